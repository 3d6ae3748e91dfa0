"""The escape and abuse corpus: every attempt is contained, with the right status, and the pool lives."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

import companion
from companion.execution import SyncExecutor
from tests.execution.conftest import assert_healthy, run

pytestmark = pytest.mark.sandbox

SERVICE_FILE = Path(companion.__file__).resolve()
FORGED_DONE = b'{"done": true, "exit_code": 0, "cpu_ms": 1.0, "memory_bytes": 1024}\n'

# The attacks, by kind: `test_session_isolation` runs them inside sessions too.
HOST_FILE_ATTACKS = [
    "print(open('/etc/passwd').read())",
    f"print(open({str(SERVICE_FILE)!r}).read())",
    "import os\nprint(open(f'/proc/{os.getppid()}/environ').read())",
    "print(open('/proc/1/environ').read())",
    "import os\nprint(os.listdir('/root'))",
    "print(open('/proc/self/mem', 'rb').read(16))",
    "import os\nos.symlink('/etc', 'etc')\nprint(os.listdir('etc'))",
]
HOST_FILE_ATTACK_IDS = [
    "passwd",
    "service-file",
    "parent-environ",
    "pid1-environ",
    "home",
    "proc-mem",
    "symlink",
]
KERNEL_ATTACKS = [
    "import os\nos.fork()",
    "import os\nwhile True:\n    os.fork()",
    "import subprocess\nsubprocess.run(['/usr/bin/true'])",
    "import os\nos.execv('/usr/bin/true', ['true'])",
    "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
    "import os, signal\nos.kill(1, signal.SIGKILL)",
    "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))",
]
KERNEL_ATTACK_IDS = [
    "fork",
    "fork-bomb",
    "subprocess",
    "exec",
    "kill-parent",
    "kill-pid1",
    "raise-rlimit",
]
SYSCALL_ATTACKS = [
    "libc.ptrace(16, 1, 0, 0)",  # PTRACE_ATTACH to the zygote
    "libc.syscall(425, 8, 0)",  # io_uring_setup
    "libc.syscall(323, 0)",  # userfaultfd
    "libc.syscall(321, 0, 0, 0)",  # bpf
    "libc.personality(0x0040000)",  # ADDR_NO_RANDOMIZE
    "libc.unshare(0x10000000)",  # CLONE_NEWUSER
    "libc.syscall(56, 0, 0, 0, 0, 0)",  # raw clone without CLONE_THREAD: a new process
    "libc.syscall(310, 1, 0, 1, 0, 1, 0)",  # process_vm_readv of pid 1
    "libc.syscall(250, 0, 0, 0, 0, 0)",  # keyctl
]
SYSCALL_ATTACK_IDS = [
    "ptrace",
    "io_uring",
    "userfaultfd",
    "bpf",
    "personality",
    "unshare",
    "clone",
    "vm-readv",
    "keyctl",
]
RESOURCE_ABUSE = [
    ("while True:\n    pass", {"wall_time_ms": 800}, "timeout"),
    ("import time\ntime.sleep(1e6)", {"wall_time_ms": 500}, "timeout"),
    ("x = bytearray(4 * 1024**3)", {}, "memory_limit"),
    ("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", {}, "memory_limit"),
    ("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)", {}, "output_limit"),
    ("while True:\n    print('spam' * 100)", {}, "output_limit"),
]
RESOURCE_ABUSE_IDS = ["busy-loop", "sleep", "4-gb", "grow", "100-mb-print", "print-loop"]
JAVASCRIPT_ABUSE = [
    ("console.log(typeof require, typeof process, typeof std)", "ok", None),
    ("while (true) {}", "timeout", None),
    ("Promise.resolve().then(() => { while (true) {} })", "timeout", None),
    ("const a = []; while (true) a.push('x'.repeat(1000) + a.length)", "memory_limit", None),
    ("while (true) console.log('spam'.repeat(100))", "output_limit", None),
    ("function f() { f() } f()", "runtime_error", None),
    ("null.x", "runtime_error", "TypeError"),
    ("this.constructor.constructor('return process')()", "runtime_error", None),
]
JAVASCRIPT_ABUSE_IDS = [
    "no-require",
    "loop",
    "promise-loop",
    "memory-bomb",
    "output",
    "recursion",
    "type",
    "escape",
]


@pytest.mark.parametrize("code", HOST_FILE_ATTACKS, ids=HOST_FILE_ATTACK_IDS)
def test_host_files_are_out_of_reach(sandbox: SyncExecutor, code: str) -> None:
    result = run(sandbox, code)
    assert result.status == "runtime_error", result
    assert result.error is not None
    assert result.error.name in {"FileNotFoundError", "PermissionError", "OSError"}
    assert "root:" not in result.stdout
    assert "__version__" not in result.stdout
    assert_healthy(sandbox)


@pytest.mark.parametrize("code", KERNEL_ATTACKS, ids=KERNEL_ATTACK_IDS)
def test_processes_signals_and_kernel_surface_are_denied(sandbox: SyncExecutor, code: str) -> None:
    result = run(sandbox, code)
    assert result.status == "runtime_error", result
    assert result.error is not None
    assert result.error.name in {"PermissionError", "ValueError", "OSError"}, result.error
    assert_healthy(sandbox)


@pytest.mark.parametrize("call", SYSCALL_ATTACKS, ids=SYSCALL_ATTACK_IDS)
def test_raw_syscalls_through_ctypes_are_denied(sandbox: SyncExecutor, call: str) -> None:
    result = run(sandbox, f"import ctypes\nlibc = ctypes.CDLL(None)\nprint({call})")
    assert result.status == "ok", result
    assert result.stdout == "-1\n"
    assert_healthy(sandbox)


def test_network_is_unreachable_even_to_loopback(sandbox: SyncExecutor) -> None:
    connections: list[object] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]

        def accept() -> None:
            with contextlib.suppress(TimeoutError):
                connections.append(listener.accept())

        thread = threading.Thread(target=accept)
        thread.start()
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)"
        result = run(sandbox, code)
        raw = run(sandbox, "import ctypes\nprint(ctypes.CDLL(None).syscall(41, 2, 1, 0))")
        thread.join()
    assert result.status == "runtime_error"
    assert result.error is not None
    assert result.error.name == "PermissionError"
    assert raw.stdout.strip() == "-1"  # a raw socket() syscall through ctypes is denied too
    assert connections == []
    assert_healthy(sandbox)


@pytest.mark.parametrize(("code", "limits", "status"), RESOURCE_ABUSE, ids=RESOURCE_ABUSE_IDS)
def test_resource_abuse_ends_with_the_right_status(
    sandbox: SyncExecutor, code: str, limits: dict[str, int], status: str
) -> None:
    result = run(sandbox, code, limits=limits)
    assert result.status == status, result
    if status == "output_limit":
        assert result.stdout_truncated
        assert len(result.stdout.encode()) <= 64 * 1024
    if status == "timeout":
        assert result.usage.wall_ms < 3000
    assert_healthy(sandbox)


def test_writing_a_huge_file_fails_cleanly(sandbox: SyncExecutor) -> None:
    code = "with open('big', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 2**20)"
    result = run(sandbox, code)
    assert result.status == "runtime_error"
    assert result.error is not None
    assert "File too large" in result.error.value
    assert_healthy(sandbox)


def test_many_threads_are_bounded_not_fatal(sandbox: SyncExecutor) -> None:
    code = (
        "import threading\nstarted = 0\ntry:\n    for _ in range(10_000):\n"
        "        threading.Thread(target=__import__('time').sleep, args=(5,), daemon=True).start()\n"
        "        started += 1\nexcept RuntimeError:\n    pass\nprint(started)"
    )
    result = run(sandbox, code, limits={"wall_time_ms": 1500})
    assert result.status in {"ok", "memory_limit", "timeout", "runtime_error"}
    assert_healthy(sandbox)


def test_state_never_leaks_between_runs(sandbox: SyncExecutor) -> None:
    for _ in range(4):  # both zygotes, twice
        dirty = run(
            sandbox,
            "import json, builtins\njson.dumps = None\nbuiltins.len = None\n"
            "open('left-behind.txt', 'w').write('secret')\nimport os\nos.environ['LEAK'] = '1'",
        )
        assert dirty.status == "ok", dirty
        clean = run(
            sandbox,
            "import json, os\nprint(json.dumps([len('ab')]), sorted(os.listdir('.')), "
            "'LEAK' in os.environ)",
        )
        assert clean.stdout == "[2] ['main.py'] False\n", clean


def test_a_segfault_under_a_small_memory_limit_is_a_runtime_error(sandbox: SyncExecutor) -> None:
    # The interpreter's own pages exceed 8 MiB; only what the snippet adds counts toward the limit.
    result = run(
        sandbox, "import ctypes\nctypes.string_at(0)", limits={"memory_bytes": 8 * 1024 * 1024}
    )
    assert (result.status, result.signal) == ("runtime_error", 11), result
    assert_healthy(sandbox)


# What every run's environment starts from: the packages' settings, nothing of the host.
RUN_ENVIRONMENT = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/.matplotlib",
}


def test_environment_is_only_what_the_request_gives(sandbox: SyncExecutor) -> None:
    result = run(sandbox, "import os\nprint(dict(os.environ))", env={"GREETING": "hi"})
    assert result.stdout == f"{ {**RUN_ENVIRONMENT, 'GREETING': 'hi'} }\n"


@pytest.mark.parametrize(
    ("code", "status", "error_name"), JAVASCRIPT_ABUSE, ids=JAVASCRIPT_ABUSE_IDS
)
def test_javascript_abuse_is_contained(
    sandbox: SyncExecutor, code: str, status: str, error_name: str | None
) -> None:
    result = run(sandbox, code, "javascript", limits={"cpu_time_ms": 700, "wall_time_ms": 1500})
    assert result.status == status, result
    if status == "ok":
        assert result.stdout == "undefined undefined undefined\n"
    if error_name is not None:
        assert result.error is not None
        assert result.error.name == error_name
    assert_healthy(sandbox)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("import os, json\nos._exit = None\nos.write = None\njson.dumps = None", "ok"),
        ("import os\nos._exit = None\nraise ValueError('after sabotage')", "runtime_error"),
        ("import os\nfor fd in (1, 2, 3):\n    os.close(fd)\nwhile True:\n    pass", "timeout"),
        (
            f"import os\nos.write(3, {FORGED_DONE!r})\n"
            "for fd in (1, 2, 3):\n    os.close(fd)\nwhile True:\n    pass",
            "ok",  # a well-formed forged exit record only fools the run's own report...
        ),
        (
            # Asleep, so no CPU limit ends it: only the grace after an exit record does.
            f"import os, time\nos.write(3, {FORGED_DONE!r})\ntime.sleep(1e6)",
            "ok",
        ),
    ],
    ids=[
        "patched-exit-and-json",
        "patched-exit-then-raise",
        "closed-pipes-spin",
        "forged-done",
        "forged-done-then-sleep",
    ],
)
def test_sabotaging_the_sandboxs_own_reporting_stays_contained(
    sandbox: SyncExecutor, code: str, status: str
) -> None:
    result = run(sandbox, code, limits={"wall_time_ms": 800, "cpu_time_ms": 800})
    assert result.status == status, result
    assert_healthy(sandbox)  # ...the spinning process is still killed before the next run


@pytest.mark.parametrize(
    ("code", "language", "name"),
    [
        ("raise ValueError('x' * 10_000_000)", "python", "ValueError"),
        ("throw new TypeError('x'.repeat(10000000))", "javascript", "TypeError"),
    ],
    ids=["python", "javascript"],
)
def test_an_exception_with_a_huge_message_is_reported_truncated(
    sandbox: SyncExecutor, code: str, language: str, name: str
) -> None:
    # A 10 MiB message used to end as `output_limit` with no structured error at all.
    result = run(sandbox, code, language)
    assert result.status == "runtime_error", result
    assert result.error is not None
    assert result.error.name == name
    assert result.error.value.startswith("xxxx")
    assert result.error.value.endswith("more characters]")
    assert len(result.error.value) < 10_000
    assert not result.stdout_truncated
    assert not result.stderr_truncated
    assert len(result.stderr) < 20_000
