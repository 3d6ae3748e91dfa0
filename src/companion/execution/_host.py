"""What isolation the host kernel and packages offer; the sandbox refuses untrusted code with none."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IsolationLayer", "landlock_abi", "probe_isolation"]

_SYS_LANDLOCK_CREATE_RULESET = 444  # same number on x86_64 and aarch64
_LANDLOCK_CREATE_RULESET_VERSION = 1
_BWRAP_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class IsolationLayer:
    """One layer of the sandbox and whether this host can use it."""

    name: str
    available: bool
    detail: str


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    return max(int(version), 0)


def _probe_bubblewrap() -> IsolationLayer:
    binary = shutil.which("bwrap")
    if binary is None:
        return IsolationLayer(
            "namespaces (bubblewrap)", False, "bwrap not found: apt install bubblewrap"
        )
    # A real start proves user/net/pid namespaces work here, not just that the binary exists.
    argv = [binary, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
    argv += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib"]
    argv += ["--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--clearenv", "/usr/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=_BWRAP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return IsolationLayer("namespaces (bubblewrap)", False, f"bwrap failed: {exc}")
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        return IsolationLayer("namespaces (bubblewrap)", False, reason)
    return IsolationLayer("namespaces (bubblewrap)", True, f"{binary}: user, net, pid, ipc, uts")


def _probe_seccomp() -> IsolationLayer:
    for module in ("pyseccomp", "seccomp"):
        if importlib.util.find_spec(module) is not None:
            return IsolationLayer("seccomp", True, f"libseccomp through `{module}`")
    return IsolationLayer("seccomp", False, "no libseccomp binding (pyseccomp) installed")


def _probe_landlock() -> IsolationLayer:
    abi = landlock_abi()
    if abi == 0:
        return IsolationLayer("landlock", False, "not offered by this kernel")
    scope = "filesystem" + (", TCP" if abi >= 4 else "") + (", signals" if abi >= 6 else "")
    return IsolationLayer("landlock", True, f"ABI {abi}: {scope}")


def _probe_rlimits() -> IsolationLayer:
    return IsolationLayer("rlimits", True, "AS, CPU, FSIZE, NOFILE, CORE")


def _probe_cgroups() -> IsolationLayer:
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    if controllers.exists():
        found = controllers.read_text().split()
        wanted = [name for name in ("memory", "pids", "cpu") if name in found]
        if wanted:
            return IsolationLayer("cgroup v2", True, "controllers: " + ", ".join(wanted))
        return IsolationLayer("cgroup v2", False, "mounted without memory/pids controllers")
    return IsolationLayer("cgroup v2", False, "not mounted")


def probe_isolation() -> list[IsolationLayer]:
    """Probe every layer; slow-ish (starts bwrap once), so call at start-up, not per run."""
    layers = [_probe_bubblewrap(), _probe_seccomp(), _probe_landlock(), _probe_rlimits()]
    layers.append(_probe_cgroups())
    if os.geteuid() == 0:
        # RLIMIT_NPROC does not bind root: process creation must be blocked by seccomp instead.
        layers.append(IsolationLayer("nproc limit", False, "running as root: kernel exempts root"))
    return layers
