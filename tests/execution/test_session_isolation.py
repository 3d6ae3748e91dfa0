"""The escape corpus inside sessions, and sessions against each other: each attack is contained
as in a run, the attacked session either lives on with its state or ends saying why, and a
neighbour session (another tenant's) is untouched. Both sandbox modes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from companion.execution import CellResult, SessionEnded
from tests.execution.conftest import Sessions
from tests.execution.test_escapes import (
    HOST_FILE_ATTACK_IDS,
    HOST_FILE_ATTACKS,
    JAVASCRIPT_ABUSE,
    JAVASCRIPT_ABUSE_IDS,
    KERNEL_ATTACK_IDS,
    KERNEL_ATTACKS,
    RESOURCE_ABUSE,
    RESOURCE_ABUSE_IDS,
    SYSCALL_ATTACK_IDS,
    SYSCALL_ATTACKS,
)

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def neighbour(sessions: Sessions) -> Iterator[str]:
    """Another tenant's session, holding a secret, open through every attack of the module."""
    session = sessions.create(tenant="tenant-b")
    stored = sessions.cell(
        session.id,
        "secret = 'b-secret-' * 4\nopen('b-only.txt', 'w').write(secret)",
        tenant="tenant-b",
    )
    assert stored.status == "ok", stored
    yield session.id
    sessions.delete(session.id, tenant="tenant-b")


def _assert_neighbour_untouched(sessions: Sessions, neighbour: str) -> None:
    check = sessions.cell(
        neighbour, "print(secret == open('b-only.txt').read())", tenant="tenant-b"
    )
    assert (check.status, check.stdout) == ("ok", "True\n"), check


def _attack(
    sessions: Sessions, code: str, language: str = "python", **fields: object
) -> tuple[str, CellResult]:
    """Open a session, give it state, run `code` as its second cell."""
    session = sessions.create(language=language)
    setup = "var mine = 7" if language == "javascript" else "mine = 7"
    assert sessions.cell(session.id, setup).status == "ok"
    return session.id, sessions.cell(session.id, code, **fields)


def _assert_alive_or_ended_clearly(sessions: Sessions, session_id: str) -> None:
    """The attacked session still has its state, or every call says it ended and why."""
    if sessions.manager.get("tenant-a", session_id).state != "ended":
        after = sessions.cell(session_id, "mine")
        if after.session_ended is None:
            assert (after.status, [r.data for r in after.results]) == ("ok", ["7"]), after
            sessions.delete(session_id)
            return
    with pytest.raises(SessionEnded, match="has ended: "):
        sessions.cell(session_id, "mine")


@pytest.mark.parametrize("code", HOST_FILE_ATTACKS, ids=HOST_FILE_ATTACK_IDS)
def test_host_files_are_out_of_reach_in_a_session(
    sessions: Sessions, neighbour: str, code: str
) -> None:
    session_id, result = _attack(sessions, code)
    assert result.status == "runtime_error", result
    assert result.error is not None
    assert result.error.name in {"FileNotFoundError", "PermissionError", "OSError"}
    assert "root:" not in result.stdout
    _assert_alive_or_ended_clearly(sessions, session_id)
    _assert_neighbour_untouched(sessions, neighbour)


@pytest.mark.parametrize("code", KERNEL_ATTACKS, ids=KERNEL_ATTACK_IDS)
def test_processes_signals_and_kernel_surface_are_denied_in_a_session(
    sessions: Sessions, neighbour: str, code: str
) -> None:
    session_id, result = _attack(sessions, code)
    assert result.status == "runtime_error", result
    assert result.error is not None
    assert result.error.name in {"PermissionError", "ValueError", "OSError"}, result.error
    _assert_alive_or_ended_clearly(sessions, session_id)
    _assert_neighbour_untouched(sessions, neighbour)


@pytest.mark.parametrize("call", SYSCALL_ATTACKS, ids=SYSCALL_ATTACK_IDS)
def test_raw_syscalls_are_denied_in_a_session(
    sessions: Sessions, neighbour: str, call: str
) -> None:
    session_id, result = _attack(
        sessions, f"import ctypes\nlibc = ctypes.CDLL(None)\nprint({call})"
    )
    assert (result.status, result.stdout) == ("ok", "-1\n"), result
    _assert_alive_or_ended_clearly(sessions, session_id)
    _assert_neighbour_untouched(sessions, neighbour)


@pytest.mark.parametrize(("code", "limits", "status"), RESOURCE_ABUSE, ids=RESOURCE_ABUSE_IDS)
def test_resource_abuse_in_a_session_ends_the_cell_with_the_right_status(
    sessions: Sessions, neighbour: str, code: str, limits: dict[str, int], status: str
) -> None:
    session_id, result = _attack(sessions, code, limits=limits)
    assert result.status == status, result
    if status == "output_limit":
        assert result.stdout_truncated
        assert len(result.stdout.encode()) <= 64 * 1024
    if status == "timeout":
        assert result.usage.wall_ms < 3000
    _assert_alive_or_ended_clearly(sessions, session_id)
    _assert_neighbour_untouched(sessions, neighbour)


@pytest.mark.parametrize(
    ("code", "status", "error_name"), JAVASCRIPT_ABUSE, ids=JAVASCRIPT_ABUSE_IDS
)
def test_javascript_abuse_in_a_session_is_contained(
    sessions: Sessions, neighbour: str, code: str, status: str, error_name: str | None
) -> None:
    limits = {"cpu_time_ms": 700, "wall_time_ms": 1500}
    session_id, result = _attack(sessions, code, "javascript", limits=limits)
    assert result.status == status, result
    if error_name is not None:
        assert result.error is not None
        assert result.error.name == error_name
    _assert_alive_or_ended_clearly(sessions, session_id)
    _assert_neighbour_untouched(sessions, neighbour)


def test_a_session_cannot_see_another_sessions_files_processes_or_user(
    sessions: Sessions, neighbour: str
) -> None:
    session = sessions.create()
    probe = sessions.cell(
        session.id,
        "import os, glob\n"
        "print(sorted(glob.glob('/tmp/**', recursive=True)))\n"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(os.getuid())",
    )
    if probe.status != "ok":  # /proc may be closed to the sandbox entirely (Landlock)
        assert probe.error is not None
        assert probe.error.name == "PermissionError", probe
    assert "b-only.txt" not in probe.stdout
    theirs = sessions.cell(neighbour, "import os\nprint(os.getuid())", tenant="tenant-b")
    if os.geteuid() == 0:  # a root service gives each sandbox a user of its own
        assert probe.stdout.splitlines()[-1] != theirs.stdout.strip()
    sessions.delete(session.id)
    _assert_neighbour_untouched(sessions, neighbour)


def test_a_session_cannot_reach_another_process_memory(sessions: Sessions, neighbour: str) -> None:
    session = sessions.create()
    # Its own pid namespace holds only its own sandbox; even so, reading or tracing any other
    # process's memory is denied for every pid it could name.
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None)\nbuf = ctypes.create_string_buffer(16)\n"
        "local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 16)\n"
        "answers = {libc.syscall(310, pid, local, 1, local, 1, 0) for pid in range(1, 65)}\n"
        "answers |= {libc.ptrace(16, pid, 0, 0) for pid in range(1, 65)}\n"
        "print(answers)"
    )
    result = sessions.cell(session.id, code)
    assert (result.status, result.stdout) == ("ok", "{-1}\n"), result
    sessions.delete(session.id)
    _assert_neighbour_untouched(sessions, neighbour)
