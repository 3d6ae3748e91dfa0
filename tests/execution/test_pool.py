"""The pool under faults: killed zygotes are replaced, a full queue says busy, workers recycle."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from companion.config import load_settings
from companion.execution import (
    ExecutionRequest,
    Executor,
    ExecutorBusy,
    IsolationLayer,
    SandboxUnavailable,
    choose_sandbox_mode,
)
from tests.execution.conftest import SANDBOX_MODES

pytestmark = pytest.mark.sandbox

FACTORIAL = ExecutionRequest(language="python", code="import math\nprint(math.factorial(10))")


def _sleep(seconds: float) -> ExecutionRequest:
    return ExecutionRequest(language="python", code=f"import time\ntime.sleep({seconds})")


@pytest.fixture
async def executor() -> AsyncIterator[Executor]:
    executor = Executor(
        load_settings(execution_pool_size=1, execution_max_queue=1, execution_runs_per_worker=3)
    )
    await executor.start()
    yield executor
    await executor.close()


async def _wait_for_pool(executor: Executor, size: int) -> None:
    for _ in range(500):
        stats = executor.pool_stats()
        if stats is not None and stats.size == size and stats.idle == size:
            return
        await asyncio.sleep(0.01)  # real-time: a replacement zygote is a real process starting
    raise AssertionError(f"pool did not get back to {size}: {executor.pool_stats()}")


async def test_a_zygote_killed_mid_run_gives_a_clear_error_and_is_replaced(
    executor: Executor,
) -> None:
    pool = executor._pool
    assert pool is not None
    zygote = next(iter(pool._all.values()))
    running = asyncio.create_task(executor.run(_sleep(5)))
    await asyncio.sleep(0.2)  # real-time: let the run start inside the real zygote
    assert zygote.pid is not None
    os.kill(zygote.pid, signal.SIGKILL)
    result = await running
    assert result.status == "internal_error"
    assert result.error is not None
    assert "replaced" in result.error.value
    await _wait_for_pool(executor, 1)
    after = await executor.run(FACTORIAL)
    assert after.stdout == "3628800\n"
    stats = executor.pool_stats()
    assert stats is not None
    assert stats.replaced == 1


async def test_a_full_queue_answers_busy_without_waiting(executor: Executor) -> None:
    first = asyncio.create_task(executor.run(_sleep(0.5)))
    await asyncio.sleep(0.05)  # real-time: the first run must occupy the only zygote
    queued = asyncio.create_task(executor.run(FACTORIAL))
    await asyncio.sleep(0.05)  # real-time: the second run must be waiting in the queue
    with pytest.raises(ExecutorBusy) as caught:
        await executor.run(FACTORIAL)
    assert caught.value.retry_after_s > 0
    assert caught.value.status == 503
    assert (await first).status == "ok"
    assert (await queued).stdout == "3628800\n"


async def test_workers_are_renewed_after_n_runs_without_the_pool_shrinking(
    executor: Executor,
) -> None:
    for renewed in (1, 2):
        for _ in range(3):  # runs_per_worker=3
            assert (await executor.run(FACTORIAL)).status == "ok"
        # The worn-out zygote serves on until its successor is ready: never fewer than one.
        for _ in range(500):
            stats = executor.pool_stats()
            assert stats is not None
            assert stats.size >= 1
            if stats.replaced == renewed and stats.size == 1:
                break
            await asyncio.sleep(0.01)  # real-time: the successor is a real process starting
        else:
            raise AssertionError(f"zygote not renewed: {executor.pool_stats()}")
    stats = executor.pool_stats()
    assert stats is not None
    assert (stats.replaced, stats.runs) == (2, 6)


async def test_metrics_observer_sees_every_run() -> None:
    seen: list[tuple[str, str]] = []
    executor = Executor(
        load_settings(execution_pool_size=1),
        observer=lambda language, status, _seconds: seen.append((language, status)),
    )
    await executor.start()
    try:
        await executor.run(FACTORIAL)
        await executor.run(ExecutionRequest(language="js", code="null.x"))
    finally:
        await executor.close()
    assert seen == [("python", "ok"), ("javascript", "runtime_error")]


async def test_without_bubblewrap_the_service_builds_the_namespaces_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # bwrap cannot be found, as on a fresh machine
    executor = Executor(load_settings(execution_pool_size=1))
    await executor.start()
    try:
        names = {layer.name: layer.available for layer in executor.layers}
        assert names["namespaces (bubblewrap)"] is False
        assert names["namespaces (own)"] is True
        assert names["unprivileged user"] is True
        assert names["seccomp"] is True
        for code in (
            "print(open('/etc/passwd').read())",
            "import socket\nsocket.socket()",
            "import os\nos.fork()",
        ):
            result = await executor.run(ExecutionRequest(language="python", code=code))
            assert result.status == "runtime_error", (code, result)
            assert "root:" not in result.stdout
        assert (await executor.run(FACTORIAL)).stdout == "3628800\n"
    finally:
        await executor.close()


AUTOGROUPS = Path("/proc/self/autogroup").exists()  # kernels built with scheduler autogroups


def _autogroup(pid: int | str) -> str:
    """The scheduler autogroup a process is in ("/autogroup-85 nice 0" names it).

    A process in the root autogroup (pid 1's, and a CI runner's that never began a session
    of its own) reads an empty file: that is a group too, and a sandbox must not share it."""
    described = Path(f"/proc/{pid}/autogroup").read_text().split()
    return described[0] if described else "root"


@pytest.mark.parametrize("mode", SANDBOX_MODES)
async def test_sandboxes_run_in_sessions_and_autogroups_of_their_own(mode: str) -> None:
    """A zygote sharing the service's session shares its autogroup: eight busy clients then
    made the kernel split one autogroup's CPU share between the service and every sandbox,
    and single runs took 770 ms instead of 60. The soak sees that only as a slow tail."""
    executor = Executor(
        load_settings(
            execution_sandbox_mode=mode, execution_pool_size=2, execution_data_pool_size=1
        )
    )
    await executor.start()
    try:
        inside = [
            child
            for pids in executor.sandbox_pids().values()
            for pid in pids
            for child in psutil.Process(pid).children(recursive=True)
        ]
        assert len(inside) >= 3, inside  # each sandbox's zygote (and template) at least
        for process in inside:
            assert os.getsid(process.pid) != os.getsid(0), process
            if AUTOGROUPS:
                assert _autogroup(process.pid) != _autogroup("self"), process
    finally:
        await executor.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another user needs root")
def test_a_non_root_service_is_told_that_either_mode_needs_root() -> None:
    """Not a zygote traceback per sandbox: the probe itself says why, as a real non-root user."""
    script = (
        "import os\n"
        "from companion.execution._launcher import probe_mode\n"
        "os.setgroups([])\n"
        "os.setresgid(65534, 65534, 65534)\n"
        "os.setresuid(65534, 65534, 65534)\n"
        "print(probe_mode('bubblewrap'))\n"
        "print(probe_mode('namespaces'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    bubblewrap, namespaces = done.stdout.splitlines()
    assert bubblewrap.endswith("run the service as root"), bubblewrap
    assert "need root" in namespaces, namespaces


@pytest.mark.parametrize(
    ("wanted", "bubblewrap", "own", "seccomp", "root", "installed", "step"),
    [
        ("auto", False, False, True, False, True, "run the service as root"),
        ("auto", False, False, True, True, False, "install bubblewrap"),
        ("auto", False, False, True, True, True, "see the reasons above"),
        ("namespaces", True, False, True, True, True, "COMPANION_EXECUTION_SANDBOX_MODE=auto"),
        ("auto", True, True, False, True, True, "install libseccomp's Python binding (pyseccomp)"),
    ],
)
def test_a_refusal_names_the_step_that_would_let_snippets_run(
    wanted: str, bubblewrap: bool, own: bool, seccomp: bool, root: bool, installed: bool, step: str
) -> None:
    """Never "run as root" to a root service, nor "install bubblewrap" to one that has it."""
    layers = [
        IsolationLayer("namespaces (bubblewrap)", bubblewrap, "why bubblewrap"),
        IsolationLayer("namespaces (own)", own, "why own"),
        IsolationLayer("seccomp", seccomp, "why seccomp"),
    ]
    settings = load_settings(execution_sandbox_mode=wanted)
    with pytest.raises(SandboxUnavailable, match="refusing to run untrusted code") as refused:
        choose_sandbox_mode(settings, layers, root=root, bwrap_installed=installed)
    message = str(refused.value)
    assert f"To run snippets: {step}" in message, message
    assert ("run the service as root" in message) is not root, message
    for layer in layers:
        assert (layer.detail in message) is not layer.available, message


async def test_refuses_to_start_without_any_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    bare = [IsolationLayer("rlimits", True, "AS, CPU")]
    monkeypatch.setattr("companion.execution._executor.probe_isolation", lambda: bare)
    with pytest.raises(SandboxUnavailable, match="refusing to run untrusted code"):
        await Executor(load_settings(execution_pool_size=1)).start()


async def test_a_zygote_that_died_while_idle_is_replaced_before_use(executor: Executor) -> None:
    pool = executor._pool
    assert pool is not None
    zygote = next(iter(pool._all.values()))
    assert zygote.pid is not None
    os.kill(zygote.pid, signal.SIGKILL)
    for _ in range(500):
        if not zygote.alive:
            break
        await asyncio.sleep(0.01)  # real-time: the kernel must deliver the signal and we reap
    result = await executor.run(FACTORIAL)
    assert result.status == "ok", result
    stats = executor.pool_stats()
    assert stats is not None
    assert stats.replaced == 1


def test_the_open_files_limit_is_raised_for_the_fds_a_pool_holds() -> None:
    from companion.execution._pool import reserve_fds

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 16, hard))  # a stingy service manager
    try:
        reserve_fds(2000)
        raised, kept_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert kept_hard == hard
        assert raised >= min(open_now + 2000, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_tenant_at_its_share_never_delays_another_tenants_short_run() -> None:
    # One key's four concurrent long runs used to hold the whole default pool of four: another
    # tenant's print(1) waited 7.7 s. A tenant now holds at most all but one zygote.
    executor = Executor(load_settings(execution_pool_size=4))
    await executor.start()
    long_run = ExecutionRequest(
        language="python",
        code="import time\ntime.sleep(10)",
        limits={"wall_time_ms": 12_000},
    )
    hogs = [asyncio.create_task(executor.run(long_run, tenant="a")) for _ in range(4)]
    try:
        for _ in range(500):
            stats = executor.pool_stats()
            if stats is not None and stats.waiting == 1:
                break  # three of A's runs hold zygotes, the fourth waits at A's share
            await asyncio.sleep(0.01)  # real-time: the runs start in real processes
        stats = executor.pool_stats()
        assert stats is not None
        assert (stats.idle, stats.waiting) == (1, 1), stats
        # B takes the idle zygote at once: it never joins A's waiting run in the queue (behind
        # A it would sit there until a 10 s sleep ended). Counted, not timed.
        run_b = asyncio.create_task(executor.run(FACTORIAL, tenant="b"))
        most_waiting = 0
        while not run_b.done():
            stats = executor.pool_stats()
            assert stats is not None
            most_waiting = max(most_waiting, stats.waiting)
            await asyncio.sleep(0.001)  # real-time: B's run is a real process
        result = await run_b
        assert result.stdout == "3628800\n", result
        assert most_waiting == 1, f"tenant b queued behind tenant a ({most_waiting} waiting)"
    finally:
        for hog in hogs:
            hog.cancel()
        await asyncio.gather(*hogs, return_exceptions=True)
        await executor.close()


async def test_a_freed_zygote_goes_to_the_tenant_holding_fewest() -> None:
    executor = Executor(load_settings(execution_pool_size=2, execution_max_sandboxes_per_tenant=2))
    await executor.start()
    short = ExecutionRequest(language="python", code="import time\ntime.sleep(0.3)\nprint('a')")
    try:
        # A takes both zygotes and queues two more; B queues after them.
        first = [asyncio.create_task(executor.run(short, tenant="a")) for _ in range(4)]
        for _ in range(500):
            stats = executor.pool_stats()
            if stats is not None and stats.waiting == 2:
                break
            await asyncio.sleep(0.01)  # real-time: the runs start in real processes
        finished_order: list[str] = []

        async def tracked(tenant: str, task: asyncio.Future[object]) -> None:
            await task
            finished_order.append(tenant)

        b = asyncio.create_task(executor.run(FACTORIAL, tenant="b"))
        await asyncio.gather(
            tracked("b", b), *(tracked("a", task) for task in first[2:]), *first[:2]
        )
        # B queued last but holds nothing: it gets the first zygote freed, before A's waiters.
        assert finished_order[0] == "b", finished_order
    finally:
        await executor.close()


INTERPRETER = os.path.realpath(sys.executable).encode()


def _sandbox_processes(root_pid: int) -> list[int]:
    """Descendants of `root_pid` running our zygote code, outermost first: the zygote, then its
    template, then the template's children."""
    found, frontier = [], [root_pid]
    while frontier:
        pid = frontier.pop(0)
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        argv = command.split(b"\0")
        if argv[0] == INTERPRETER and b"sandbox.zygote" in command:  # not bwrap's own argv
            found.append(pid)
        frontier += [int(child) for child in children]
    return found


@pytest.mark.parametrize("which", [0, 1], ids=["zygote", "template"])
async def test_a_zygote_or_template_that_stops_answering_is_replaced(
    executor: Executor, which: int
) -> None:
    # A stopped template or zygote used to take its pool slot with it for good.
    pool = executor._pool
    assert pool is not None
    zygote = next(iter(pool._all.values()))
    assert zygote.pid is not None
    os.kill(_sandbox_processes(zygote.pid)[which], signal.SIGSTOP)
    for _ in range(3):  # the first run may use a prepared child; later ones find it hung
        result = await executor.run(FACTORIAL)
        assert (result.status, result.stdout) == ("ok", "3628800\n"), result
    for _ in range(1000):
        stats = executor.pool_stats()
        if stats is not None and stats.replaced >= 1 and stats.size == 1:
            break
        await asyncio.sleep(0.01)  # real-time: the watchdog and a new zygote are real
    stats = executor.pool_stats()
    assert stats is not None
    assert (stats.size, stats.replaced >= 1) == (1, True), stats
