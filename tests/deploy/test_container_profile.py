"""The container's seccomp profile (deploy/docker/seccomp.json) is well formed, shuts what it says it shuts,
and runs real sandboxes with the capabilities deploy/compose.yaml grants, as the container runtime would.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from companion.execution._seccomp import ALLOWED_SYSCALLS
from tests._services import unavailable

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROFILE = DEPLOY / "docker" / "seccomp.json"
CONTAINER = Path(__file__).with_name("_container.py")
# Calls the sandbox's own filter allows only in some forms: the container must allow them too.
SANDBOX_CONDITIONAL = (
    "clone clone3 fcntl ioctl prctl socketpair setpriority sched_setaffinity prlimit64 setrlimit execve"
).split()
# What the service never needs and what widens the kernel's attack surface (docs/deployment.md).
SHUT = (
    "bpf perf_event_open io_uring_setup io_uring_enter io_uring_register userfaultfd keyctl add_key "
    "request_key ptrace process_vm_readv process_vm_writev pidfd_getfd kcmp setns open_by_handle_at "
    "name_to_handle_at fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr kexec_load "
    "kexec_file_load init_module finit_module delete_module reboot swapon swapoff acct syslog "
    "settimeofday clock_settime clock_adjtime adjtimex chroot personality modify_ldt"
).split()
# With these arguments an allowed call fails with EFAULT or EINVAL: EPERM comes from a filter.
_PROBES = """
import ctypes, json, pyseccomp
libc = ctypes.CDLL(None, use_errno=True)
def probe(name, *args):
    libc.syscall(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name), *args)
    return ctypes.get_errno()
probes = {"io_uring_setup": probe("io_uring_setup", 0, 0), "keyctl": probe("keyctl", 0, 0x7FFFFFFF)}
"""
_RUNS = """
from companion.config import load_settings
from companion.execution import ExecutionRequest, SyncExecutor
runs = []
try:
    with SyncExecutor(load_settings()) as executor:
        for language, code, limits in (
            ("python", "print(6 * 7)", {}),
            ("javascript", "6 * 7", {}),
            ("python", "import time\\ntime.sleep(10)", {"wall_time_ms": 300}),
        ):
            request = ExecutionRequest(language=language, code=code, limits=limits)
            result = executor.run(request)
            runs.append([result.status, result.stdout + "".join(r.data for r in result.results)])
except Exception as exc:
    runs.append(["error", str(exc)])
print(json.dumps({"probes": probes, "runs": runs}))
"""


def profile() -> Any:
    return json.loads(PROFILE.read_text())


def allowed() -> set[str]:
    return {name for rule in profile()["syscalls"] for name in rule["names"]}


def test_profile_is_an_allow_list_of_real_syscalls() -> None:
    import pyseccomp as seccomp

    document = profile()
    assert document["defaultAction"] == "SCMP_ACT_ERRNO"
    assert {rule["action"] for rule in document["syscalls"]} == {"SCMP_ACT_ALLOW"}
    names = [name for rule in document["syscalls"] if "args" not in rule for name in rule["names"]]
    assert len(names) == len(set(names)), "a syscall is listed twice"
    arches = (seccomp.Arch.X86_64, seccomp.Arch.AARCH64)
    unknown = {
        name
        for name in allowed()
        if all(seccomp.resolve_syscall(arch, name) < 0 for arch in arches)
    }
    assert not unknown, f"not syscalls of x86_64 or aarch64 (a typo?): {sorted(unknown)}"


def test_profile_allows_what_sandboxes_use_and_shuts_the_rest() -> None:
    import pyseccomp as seccomp

    names = allowed()
    # A syscall the container denies is denied inside every sandbox too, whatever its filter says.
    needed = {*ALLOWED_SYSCALLS, *SANDBOX_CONDITIONAL}
    known = {name for name in needed if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0}
    assert known <= names, sorted(known - names)
    assert {"unshare", "mount", "umount2", "pivot_root", "sethostname"} <= names
    assert not names & set(SHUT), sorted(names & set(SHUT))


def run_confined(tmp_path: Path, document: Any) -> dict[str, Any]:
    """Run sandboxes under `document` as root with only the capabilities compose.yaml grants."""
    if os.geteuid() != 0:
        unavailable("root, to run the service with the container's capabilities")
    node = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["companion-1"]
    profile_path = tmp_path / "seccomp.json"
    profile_path.write_text(json.dumps(document))
    env = {
        **os.environ,
        "COMPANION_EXECUTION_SANDBOX_MODE": "namespaces",
        "COMPANION_EXECUTION_POOL_SIZE": "1",
    }
    argv = [sys.executable, CONTAINER, profile_path, "--caps", ",".join(node["cap_add"]), "--"]
    argv += [sys.executable, "-c", _PROBES + _RUNS]
    done = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


@pytest.mark.sandbox
def test_sandboxes_run_under_the_containers_profile_and_capabilities(tmp_path: Path) -> None:
    report = run_confined(tmp_path, profile())
    assert report["runs"] == [["ok", "42\n"], ["ok", "42"], ["timeout", ""]], report
    assert report["probes"] == {"io_uring_setup": errno.EPERM, "keyctl": errno.EPERM}
    # Unconfined, the same calls reach the kernel, which refuses their arguments instead.
    import pyseccomp as seccomp

    libc = ctypes.CDLL(None, use_errno=True)
    for name, args in (("io_uring_setup", (0, 0)), ("keyctl", (0, 0x7FFFFFFF))):
        libc.syscall(seccomp.resolve_syscall(seccomp.Arch.NATIVE, name), *args)
        assert ctypes.get_errno() not in {0, errno.EPERM}, name


@pytest.mark.sandbox
def test_without_unshare_no_sandbox_starts(tmp_path: Path) -> None:
    document = profile()
    for rule in document["syscalls"]:
        rule["names"] = [name for name in rule["names"] if name != "unshare"]
    report = run_confined(tmp_path, document)
    assert [status for status, _ in report["runs"]] == ["error"], report
