"""The opt-in `node` runtime: warm workers per tenant inside the same OS sandbox."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator

import pytest

from companion.config import load_settings
from companion.execution import ExecutionRequest, Executor, UnknownLanguage
from tests._services import unavailable
from tests.execution.conftest import SANDBOX_MODES

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _node_installed() -> None:
    """Skip locally, fail in CI: the machine has Node.js 20, and CI must test it."""
    if shutil.which("node") is None:
        unavailable("Node.js")


ESCAPE = "const p = this.constructor.constructor('return process')();\n"


@pytest.fixture(params=SANDBOX_MODES)
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    settings = load_settings(
        execution_pool_size=1,
        execution_node_enabled=True,
        execution_node_max_workers=2,
        execution_sandbox_mode=request.param,
    )
    executor = Executor(settings)
    await executor.start()
    yield executor
    await executor.close()


def _node(code: str, **limits: int) -> ExecutionRequest:
    return ExecutionRequest(language="node", code=code, limits=limits)


async def test_node_runs_and_reports_like_the_other_runtimes(executor: Executor) -> None:
    result = await executor.run(_node("console.log([1, 2, 3].map((x) => x * 2), typeof require)"))
    assert result.status == "ok", result
    assert result.stdout == "[ 2, 4, 6 ] undefined\n"
    assert result.language == "node"
    assert result.version.split(".")[0].isdigit()
    error = await executor.run(_node("function f() { throw new TypeError('bad') }\nf()"))
    assert error.status == "runtime_error"
    assert error.error is not None
    assert (error.error.name, error.error.value) == ("TypeError", "bad")
    assert "main.js" in error.error.traceback


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (ESCAPE + "p.getBuiltinModule('child_process').execSync('id')", "EPERM"),
        (ESCAPE + "p.getBuiltinModule('fs').readFileSync('/etc/passwd', 'utf8')", "ENOENT"),
        (ESCAPE + "p.getBuiltinModule('fs').writeFileSync('/usr/x', '1')", "EROFS"),
        (ESCAPE + "p.dlopen({exports: {}}, '/usr/lib/x86_64-linux-gnu/libc.so.6')", "addons"),
    ],
    ids=["child-process", "host-file", "write-usr", "native-addon"],
)
async def test_escaping_vm_still_meets_the_os_sandbox(
    executor: Executor, code: str, expected: str
) -> None:
    result = await executor.run(_node(code))
    assert result.status == "runtime_error", result
    assert result.error is not None
    assert expected in result.error.value + result.error.name, result.error


async def test_network_is_denied_even_from_an_escaped_process(executor: Executor) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = ESCAPE + (
            f"const s = p.getBuiltinModule('net').connect({port}, '127.0.0.1');\n"
            "s.on('error', (e) => { p.__companion_net = e.code });"
        )
        await executor.run(_node(code))
        # The error event fires on the worker's event loop before it reads the next request.
        probe = await executor.run(_node(ESCAPE + "console.log(String(p.__companion_net))"))
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
    assert probe.stdout in {"EPERM\n", "EACCES\n"}, probe


async def test_timeouts_recycle_the_worker(executor: Executor) -> None:
    await executor.run(_node(ESCAPE + "p.__companion_mark = 1"))
    loop = await executor.run(_node("while (true) {}", cpu_time_ms=300, wall_time_ms=2000))
    assert loop.status == "timeout"
    fresh = await executor.run(_node(ESCAPE + "console.log(String(p.__companion_mark))"))
    assert fresh.stdout == "undefined\n"  # a new worker: nothing of the old one survives


async def test_promise_loops_are_timed_out(executor: Executor) -> None:
    code = "Promise.resolve().then(() => { while (true) {} })"
    result = await executor.run(_node(code, cpu_time_ms=300, wall_time_ms=2000))
    assert result.status == "timeout"


async def test_a_worker_never_serves_two_tenants(executor: Executor) -> None:
    mark = ESCAPE + "p.__companion_tenant = 'alice'"
    read = ESCAPE + "console.log(String(p.__companion_tenant))"
    await executor.run(_node(mark), tenant="alice")
    assert (await executor.run(_node(read), tenant="bob")).stdout == "undefined\n"
    # The same tenant does share its warm worker: vm is not a boundary (documented).
    assert (await executor.run(_node(read), tenant="alice")).stdout == "alice\n"


async def test_output_is_capped(executor: Executor) -> None:
    result = await executor.run(
        _node("for (;;) console.log('spam'.repeat(100))", max_output_bytes=2048)
    )
    assert result.status == "output_limit"
    assert result.stdout_truncated
    assert len(result.stdout) <= 2048


async def test_node_is_opt_in() -> None:
    executor = Executor(load_settings(execution_pool_size=1))
    assert "node" not in [runtime.language for runtime in executor.runtimes]
    with pytest.raises(UnknownLanguage):
        executor.runtimes.resolve("node")
