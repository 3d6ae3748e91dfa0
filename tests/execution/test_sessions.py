"""Sessions: state between cells, limits that interrupt a cell but keep the session, files, and a
lifecycle (idle expiry, lifetime, caps) driven by an injected clock. Both sandbox modes."""

from __future__ import annotations

import asyncio
import base64
import os
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.config import load_settings
from companion.errors import Conflict, PayloadTooLarge
from companion.execution import (
    CellRequest,
    CellResult,
    ExecutorBusy,
    LimitAboveMaximum,
    SessionCapacityReached,
    SessionEnded,
    SessionLimitReached,
    SessionNotFound,
    SourceFile,
    SyncExecutor,
    UnknownLanguage,
    WorkspaceFileNotFound,
)
from companion.execution import (
    InvalidSnippet as InvalidSnippetError,
)
from tests.execution.conftest import SANDBOX_MODES, Sessions, session_settings

pytestmark = pytest.mark.sandbox


def test_variables_imports_and_files_persist_between_cells(sessions: Sessions) -> None:
    session = sessions.create()
    first = sessions.cell(session.id, "x = 41\nimport json\nopen('notes.txt', 'w').write('kept')")
    assert (first.status, first.execution_count) == ("ok", 1), first
    second = sessions.cell(session.id, "print(x + 1)\njson.dumps(open('notes.txt').read())")
    assert second.status == "ok", second
    assert second.stdout == "42\n"
    assert [r.data for r in second.results] == ["'\"kept\"'"]
    assert second.execution_count == 2
    assert sessions.manager.get("tenant-a", session.id).execution_count == 2
    sessions.delete(session.id)


def test_functions_from_earlier_cells_keep_display_and_tracebacks(sessions: Sessions) -> None:
    session = sessions.create()
    sessions.cell(session.id, "def show(v):\n    display(v)\n\ndef fail():\n    return 1 / 0")
    shown = sessions.cell(session.id, "show({'a': 1})")
    assert [(r.kind, r.data) for r in shown.results] == [("display", "{'a': 1}")]
    failed = sessions.cell(session.id, "fail()")
    assert failed.status == "runtime_error"
    assert failed.error is not None
    assert 'File "<cell 1>", line 5, in fail' in failed.error.traceback
    assert "return 1 / 0" in failed.error.traceback  # the earlier cell's source line is shown
    assert 'File "<cell 3>", line 1' in failed.error.traceback
    sessions.delete(session.id)


def test_the_working_directory_persists_and_stdin_is_per_cell(sessions: Sessions) -> None:
    session = sessions.create()
    sessions.cell(session.id, "import os\nos.makedirs('sub')\nos.chdir('sub')")
    where = sessions.cell(
        session.id, "print(os.path.basename(os.getcwd()))\nprint(input())", stdin="a\n"
    )
    assert where.stdout == "sub\na\n", where
    empty = sessions.cell(session.id, "import sys\nprint(repr(sys.stdin.read()))")
    assert empty.stdout == "''\n"
    sessions.delete(session.id)


def test_javascript_sessions_keep_their_globals(sessions: Sessions) -> None:
    session = sessions.create(language="javascript")
    sessions.cell(session.id, "var total = 40; function add(n) { total += n; return total }")
    result = sessions.cell(session.id, "console.log('adding'); add(2)")
    assert result.stdout == "adding\n", result
    assert [r.data for r in result.results] == ["42"]
    looped = sessions.cell(session.id, "while (true) {}", limits={"cpu_time_ms": 300})
    assert looped.status == "timeout"
    # Past its wall time (its CPU limit far away): SIGINT cannot stop QuickJS, its own limit does.
    walled = sessions.cell(
        session.id, "while (true) {}", limits={"wall_time_ms": 400, "cpu_time_ms": 20_000}
    )
    assert (walled.status, walled.session_ended) == ("timeout", None), walled
    after = sessions.cell(session.id, "total")
    assert (after.status, [r.data for r in after.results]) == ("ok", ["42"])
    sessions.delete(session.id)


@pytest.mark.parametrize(
    ("code", "limits"),
    [
        ("while True:\n    pass", {"wall_time_ms": 5000, "cpu_time_ms": 300}),
        ("import time\ntime.sleep(60)", {"wall_time_ms": 300}),
        (
            "try:\n    import time\n    time.sleep(60)\nexcept Exception:\n    pass",
            {"wall_time_ms": 300},
        ),
    ],
    ids=["cpu", "wall", "wall-despite-except-exception"],
)
def test_a_cell_over_its_time_is_interrupted_and_the_session_lives_on(
    sessions: Sessions, code: str, limits: dict[str, int]
) -> None:
    session = sessions.create()
    sessions.cell(session.id, "state = 'kept'")
    result = sessions.cell(session.id, code, limits=limits)
    assert result.status == "timeout", result
    assert result.error is not None
    assert result.error.name == "KeyboardInterrupt"
    assert result.usage.wall_ms < 2000
    assert result.session_ended is None
    after = sessions.cell(session.id, "print(state)")
    assert (after.status, after.stdout) == ("ok", "kept\n")
    sessions.delete(session.id)


def test_a_cell_that_will_not_stop_ends_its_session_clearly(sessions: Sessions) -> None:
    session = sessions.create()
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    result = sessions.cell(session.id, code, limits={"wall_time_ms": 300, "cpu_time_ms": 30_000})
    assert result.status == "timeout", result
    assert result.session_ended is not None
    assert "did not stop" in result.session_ended
    with pytest.raises(SessionEnded, match="did not stop"):
        sessions.cell(session.id, "1")
    assert sessions.manager.get("tenant-a", session.id).state == "ended"


def test_output_over_the_cap_interrupts_the_cell_only(sessions: Sessions) -> None:
    session = sessions.create()
    result = sessions.cell(session.id, "n = 0\nwhile True:\n    print('spam' * 100)\n    n += 1")
    assert result.status == "output_limit", result
    assert result.stdout_truncated
    assert len(result.stdout.encode()) <= 64 * 1024
    after = sessions.cell(session.id, "print(n > 0)")
    assert (after.status, after.stdout) == ("ok", "True\n"), after  # no spam left over
    sessions.delete(session.id)


def test_over_memory_is_reported_and_neither_session_is_harmed(sessions: Sessions) -> None:
    greedy = sessions.create(limits={"memory_bytes": 64 * 1024 * 1024})
    neighbour = sessions.create()
    sessions.cell(neighbour.id, "mine = list(range(10))")
    sessions.cell(greedy.id, "kept = 'yes'")
    result = sessions.cell(
        greedy.id, "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))"
    )
    assert result.status == "memory_limit", result
    assert result.session_ended is None
    after = sessions.cell(greedy.id, "del chunks\nprint(kept)")
    assert (after.status, after.stdout) == ("ok", "yes\n"), after
    other = sessions.cell(neighbour.id, "print(sum(mine))")
    assert (other.status, other.stdout) == ("ok", "45\n")
    sessions.delete(greedy.id)
    sessions.delete(neighbour.id)


def test_a_crash_ends_the_session_and_every_later_call_says_why(sessions: Sessions) -> None:
    crashing = sessions.create()
    neighbour = sessions.create()
    sessions.cell(neighbour.id, "mine = 7")
    result = sessions.cell(crashing.id, "import ctypes\nctypes.string_at(0)")
    assert result.status == "runtime_error", result
    assert result.signal == signal.SIGSEGV
    assert result.session_ended == "its process crashed (SIGSEGV)"
    for call in (
        lambda: sessions.cell(crashing.id, "1"),
        lambda: sessions.executor.call(sessions.manager.list_files("tenant-a", crashing.id)),
    ):
        with pytest.raises(SessionEnded, match=r"crashed \(SIGSEGV\)"):
            call()
    info = sessions.manager.get("tenant-a", crashing.id)
    assert (info.state, info.ended_reason) == ("ended", "its process crashed (SIGSEGV)")
    assert sessions.cell(neighbour.id, "print(mine)").stdout == "7\n"
    sessions.delete(neighbour.id)


def test_os_exit_ends_the_session_with_its_code(sessions: Sessions) -> None:
    session = sessions.create()
    burnt = sessions.cell(
        session.id,
        "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end:\n    pass",
    )
    assert burnt.usage.cpu_ms >= 500
    result = sessions.cell(session.id, "import os\nos._exit(3)")
    assert result.session_ended == "its process exited with code 3"
    assert result.usage.cpu_ms < 400  # this cell's CPU, not the process's whole life's
    with pytest.raises(SessionEnded, match="code 3"):
        sessions.cell(session.id, "1")


# A POSIX timer that delivers real-time signal 40 in 1 ms: signals to the process itself are allowed.
REAL_TIME_SIGNAL = """\
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)

class Event(ctypes.Structure):
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                ("pad", ctypes.c_char * 48)]

class Spec(ctypes.Structure):
    _fields_ = [("i_s", ctypes.c_long), ("i_ns", ctypes.c_long), ("v_s", ctypes.c_long),
                ("v_ns", ctypes.c_long)]

timer = ctypes.c_void_p()
assert libc.timer_create(1, ctypes.byref(Event(None, 40, 0)), ctypes.byref(timer)) == 0
assert libc.timer_settime(timer, 0, ctypes.byref(Spec(0, 0, 0, 1_000_000)), None) == 0
time.sleep(5)
"""


def test_a_real_time_signal_ends_the_session_by_number(sessions: Sessions) -> None:
    session = sessions.create()
    result = sessions.cell(session.id, REAL_TIME_SIGNAL)
    assert result.session_ended == "its process crashed (signal 40)", result
    with pytest.raises(SessionEnded, match="signal 40"):
        sessions.cell(session.id, "1")


def test_an_idle_session_is_stopped_so_its_threads_spend_nothing(sessions: Sessions) -> None:
    session = sessions.create()
    code = (
        "import threading\nticks = [0]\n\ndef spin():\n    while True:\n        ticks[0] += 1\n\n"
        "threading.Thread(target=spin, daemon=True).start()"
    )
    assert sessions.cell(session.id, code).status == "ok"
    top = sessions.manager.sandbox_pid("tenant-a", session.id)
    assert top is not None
    # Between cells the interpreter, spinning thread and all, is stopped (state T).
    interpreter = _leaf(top)
    assert _stops(interpreter)
    resumed = sessions.cell(
        session.id, "before = ticks[0]\nwhile ticks[0] == before:\n    pass\n'on'"
    )
    assert [r.data for r in resumed.results] == ["'on'"]  # it runs again during a cell
    assert _stops(interpreter)
    sessions.delete(session.id)


def _stops(pid: int) -> bool:
    """True once every thread of `pid` is stopped (a stop signal takes effect a moment after it
    is sent: polled with a deadline)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = {
            Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()[0]
            for task in os.listdir(f"/proc/{pid}/task")
        }
        if states == {"T"}:
            return True
        time.sleep(0.01)  # real time: the kernel stopping another process's threads
    return False


@pytest.mark.parametrize("target", ["child", "sandbox"])
def test_killing_a_sessions_process_gives_a_clear_error_and_capacity_recovers(
    sessions: Sessions, target: str
) -> None:
    session = sessions.create()
    sessions.cell(session.id, "x = 1")
    top = sessions.manager.sandbox_pid("tenant-a", session.id)
    assert top is not None
    # The session's interpreter is the one leaf of its sandbox's process tree; killing the top
    # kills it too, a moment later (its namespace's init dies with its parent).
    interpreter = _leaf(top)
    _kill_and_wait(top if target == "sandbox" else interpreter, interpreter)
    try:  # the first call may find the process dead mid-call: its answer says so then
        first = sessions.cell(session.id, "x")
        assert first.session_ended is not None, first
    except SessionEnded:
        pass
    with pytest.raises(SessionEnded) as ended:
        sessions.cell(session.id, "x")
    if target == "child":  # no cell was running: nothing of ours killed it
        reason = str(ended.value)
        assert "killed from outside the service" in reason or "stopped reporting" in reason, reason
    assert sessions.manager.get("tenant-a", session.id).state == "ended"
    assert sessions.manager.sandbox_pid("tenant-a", session.id) is None
    # Its identity and slot are free again: a new session opens and works.
    fresh = sessions.create()
    assert sessions.cell(fresh.id, "print('fine')").stdout == "fine\n"
    sessions.delete(fresh.id)


def _leaf(pid: int) -> int:
    while True:
        children = [
            int(child)
            for task in os.listdir(f"/proc/{pid}/task")
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        ]
        if not children:
            return pid
        pid = children[-1]


def _kill_and_wait(pid: int, dies_too: int) -> None:
    """SIGKILL `pid`, then wait until it and `dies_too` have both exited."""
    watched = [os.pidfd_open(pid)]
    if dies_too != pid:
        watched.append(os.pidfd_open(dies_too))
    try:
        signal.pidfd_send_signal(watched[0], signal.SIGKILL)
        for fd in watched:
            ready, _, _ = select.select([fd], [], [], 10)  # readable once it has exited
            assert ready, "a session's process did not exit"
    finally:
        for fd in watched:
            os.close(fd)


def test_workspace_files_in_and_out(sessions: Sessions) -> None:
    session = sessions.create()
    manager = sessions.manager
    call = sessions.executor.call
    upload = [
        SourceFile(name="data/in.csv", content="a,b\n1,2\n"),
        SourceFile(
            name="blob.bin", content=base64.b64encode(b"\x00\xff").decode(), encoding="base64"
        ),
    ]
    call(manager.put_files("tenant-a", session.id, upload))
    listing = call(manager.list_files("tenant-a", session.id))
    assert [(f.path, f.size_bytes) for f in listing.files] == [("blob.bin", 2), ("data/in.csv", 8)]
    result = sessions.cell(
        session.id,
        "rows = open('data/in.csv').read().split()\nopen('out.txt', 'w').write(str(len(rows)))",
    )
    # A cell returns only what it wrote or changed, not the workspace's other files.
    assert [f.path for f in result.files] == ["out.txt"], result
    downloaded = call(manager.read_file("tenant-a", session.id, "blob.bin"))
    assert base64.b64decode(downloaded.content_base64) == b"\x00\xff"
    call(manager.delete_file("tenant-a", session.id, "blob.bin"))
    with pytest.raises(WorkspaceFileNotFound):
        call(manager.read_file("tenant-a", session.id, "blob.bin"))
    with pytest.raises(WorkspaceFileNotFound):
        call(manager.read_file("tenant-a", session.id, "data"))  # a folder is not a file
    with pytest.raises(InvalidSnippetError):
        call(manager.read_file("tenant-a", session.id, "../etc/passwd"))
    with pytest.raises(Conflict):  # a folder stands where the file would go
        call(manager.put_files("tenant-a", session.id, [SourceFile(name="data", content="x")]))
    too_big = SourceFile(
        name="big.bin", content=base64.b64encode(bytes(2**21)).decode(), encoding="base64"
    )
    with pytest.raises(PayloadTooLarge):  # over the session's max_file_bytes (1 MiB here)
        call(manager.put_files("tenant-a", session.id, [too_big]))
    sessions.cell(session.id, "import os\nos.symlink('/etc/passwd', 'link')")
    with pytest.raises(WorkspaceFileNotFound):
        call(manager.read_file("tenant-a", session.id, "link"))  # never through a link
    sessions.cell(session.id, "os.symlink('/etc', 'etcdir')")
    for through_a_link in (manager.read_file, manager.delete_file):
        with pytest.raises(WorkspaceFileNotFound):
            call(through_a_link("tenant-a", session.id, "etcdir/hostname"))
    sessions.delete(session.id)


def test_cells_take_files_and_validate_them(sessions: Sessions) -> None:
    session = sessions.create()
    result = sessions.cell(
        session.id, "print(open('in/x.txt').read())", files=[{"name": "in/x.txt", "content": "hi"}]
    )
    assert result.stdout == "hi\n"
    assert result.files == []  # written by the request, not by the cell
    with pytest.raises(InvalidSnippetError):
        sessions.cell(session.id, "   ")
    sessions.delete(session.id)


def test_other_tenants_cannot_see_or_touch_a_session(sessions: Sessions) -> None:
    session = sessions.create(tenant="tenant-a")
    manager = sessions.manager
    call = sessions.executor.call
    attempts = [
        lambda: manager.get("tenant-b", session.id),
        lambda: sessions.cell(session.id, "1", tenant="tenant-b"),
        lambda: call(manager.list_files("tenant-b", session.id)),
        lambda: call(manager.read_file("tenant-b", session.id, "x")),
        lambda: call(manager.put_files("tenant-b", session.id, [SourceFile(name="x", content="")])),
        lambda: sessions.delete(session.id, tenant="tenant-b"),
    ]
    for attempt in attempts:
        with pytest.raises(SessionNotFound):
            attempt()
    assert session.id not in {s.id for s in manager.list_sessions("tenant-b")}
    assert session.id in {s.id for s in manager.list_sessions("tenant-a")}
    assert len(session.id) >= 24  # 144 random bits after the prefix
    sessions.delete(session.id)


def test_bad_session_requests_are_refused(sessions: Sessions) -> None:
    with pytest.raises(UnknownLanguage):
        sessions.create(language="cobol")
    with pytest.raises(LimitAboveMaximum):
        sessions.create(limits={"memory_bytes": 2**40})
    with pytest.raises(LimitAboveMaximum):
        sessions.create(idle_timeout_s=10**7)
    with pytest.raises(SessionNotFound):
        sessions.cell("ses_unknown", "1")


class FakeClock:
    """Unix time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=SANDBOX_MODES)
def clocked(request: pytest.FixtureRequest) -> Iterator[tuple[Sessions, FakeClock]]:
    """Sessions on an executor whose clock the test moves, with small caps."""
    clock = FakeClock()
    settings = load_settings(
        **session_settings(
            str(request.param),
            execution_session_spares=0,
            execution_max_sessions=3,
            execution_max_sessions_per_tenant=2,
            execution_session_idle_timeout_s=60,
            execution_session_max_lifetime_s=600,
        )
    )
    executor = SyncExecutor(settings)
    executor.executor._clock = clock  # before start: the session manager takes it then
    with executor:
        yield Sessions(executor), clock


def test_idle_sessions_expire_and_say_so(clocked: tuple[Sessions, FakeClock]) -> None:
    sessions, clock = clocked
    idle = sessions.create()
    busy = sessions.create(idle_timeout_s=120)
    clock.now += 59
    assert sessions.executor.call(sessions.manager.expire()) == []
    sessions.cell(busy.id, "x = 1")  # used: its idle time starts again
    clock.now += 2
    assert sessions.executor.call(sessions.manager.expire()) == [idle.id]
    with pytest.raises(SessionEnded, match="idle for 60 s"):
        sessions.cell(idle.id, "1")
    assert sessions.cell(busy.id, "print(x)").stdout == "1\n"
    assert sessions.manager.get("tenant-a", busy.id).expires_at == clock.now + 120


def test_sessions_end_at_their_maximum_lifetime(clocked: tuple[Sessions, FakeClock]) -> None:
    sessions, clock = clocked
    session = sessions.create(idle_timeout_s=3600)
    for _ in range(11):
        clock.now += 55
        sessions.cell(session.id, "1")
    assert sessions.executor.call(sessions.manager.expire()) == [session.id]
    with pytest.raises(SessionEnded, match="maximum lifetime"):
        sessions.cell(session.id, "1")


def test_caps_per_tenant_and_per_node_say_when_to_retry(
    clocked: tuple[Sessions, FakeClock],
) -> None:
    sessions, clock = clocked
    first = sessions.create("tenant-a")
    clock.now += 20
    sessions.create("tenant-a")
    with pytest.raises(SessionLimitReached) as tenant_full:
        sessions.create("tenant-a")
    assert tenant_full.value.status == 429
    assert tenant_full.value.retry_after_s == 40  # the first one's idle expiry
    sessions.create("tenant-b")
    with pytest.raises(SessionCapacityReached) as node_full:
        sessions.create("tenant-c")
    assert node_full.value.status == 503
    assert node_full.value.retry_after_s == 40
    sessions.delete(first.id)
    opened = sessions.create("tenant-c")
    assert opened.state == "idle"


def test_deleting_a_session_mid_cell_answers_the_cell(sessions: Sessions) -> None:
    session = sessions.create()
    manager = sessions.manager

    async def race() -> CellResult:
        started = asyncio.Event()
        request = CellRequest(code="print('started', flush=True)\nimport time\ntime.sleep(30)")
        cell = asyncio.ensure_future(
            manager.execute("tenant-a", session.id, request, lambda _: started.set())
        )
        await started.wait()  # the cell runs: the delete below ends it mid-way
        await manager.delete("tenant-a", session.id)
        return await cell

    result = sessions.executor.call(race())
    assert result.stdout == "started\n"
    assert result.session_ended == "it was deleted by its owner"
    assert result.usage.wall_ms < 5000


def test_spares_open_sessions_without_starting_a_sandbox(sessions: Sessions) -> None:
    assert sessions.manager.stats().spares >= 1
    session = sessions.create()
    assert sessions.cell(session.id, "print(1)").stdout == "1\n"
    sessions.delete(session.id)


@pytest.mark.parametrize("mode", SANDBOX_MODES)
def test_sessions_can_start_with_the_packages_imported(mode: str) -> None:
    settings = load_settings(
        **session_settings(mode, execution_session_spares=0, execution_session_preload=True)
    )
    with SyncExecutor(settings) as executor:
        sessions = Sessions(executor)
        session = sessions.create()
        code = "import sys\nprint('pandas' in sys.modules)\nimport pandas as pd\nint(pd.Series([1, 2]).sum())"
        result = sessions.cell(session.id, code)
        assert (result.status, result.stdout) == ("ok", "True\n"), result
        assert [r.data for r in result.results] == ["3"]
        plain = SyncExecutor(load_settings(**session_settings(mode, execution_session_spares=0)))
        with plain:
            other = Sessions(plain)
            cold = other.create()
            assert (
                other.cell(cold.id, "import sys\nprint('pandas' in sys.modules)").stdout
                == "False\n"
            )


@pytest.mark.parametrize("mode", SANDBOX_MODES)
def test_running_cells_are_capped_per_node_and_per_tenant(mode: str) -> None:
    # Two cells at once on this node, one per tenant, none queued: the third is refused.
    settings = load_settings(
        **session_settings(
            mode,
            execution_pool_size=2,
            execution_max_sandboxes_per_tenant=1,
            execution_max_queue=0,
            execution_session_spares=0,
        )
    )
    with SyncExecutor(settings) as executor:
        sessions = Sessions(executor)
        manager = sessions.manager
        busy, same_tenant = sessions.create(), sessions.create()
        other = sessions.create(tenant="tenant-b")

        async def scenario() -> tuple[str, str]:
            started = asyncio.Event()
            request = CellRequest(code="print('on', flush=True)\nimport time\ntime.sleep(30)")
            running = asyncio.ensure_future(
                manager.execute("tenant-a", busy.id, request, lambda _: started.set())
            )
            await started.wait()  # tenant-a's cell holds its tenant's one slot from here
            try:
                await manager.execute("tenant-a", same_tenant.id, CellRequest(code="1"))
                refused = "ran"
            except ExecutorBusy as exc:
                refused = exc.code
            allowed = await manager.execute("tenant-b", other.id, CellRequest(code="'b'"))
            await manager.delete("tenant-a", busy.id)  # ends the sleeping cell
            await running
            return refused, allowed.status

        assert executor.call(scenario()) == ("executor_busy", "ok")
        # The slot is free again.
        assert sessions.cell(same_tenant.id, "print('now')").stdout == "now\n"
