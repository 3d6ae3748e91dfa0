"""What isolation the host kernel and packages offer; the sandbox refuses untrusted code with none."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from companion.execution._launcher import probe_mode

__all__ = ["BUBBLEWRAP", "OWN_NAMESPACES", "IsolationLayer", "landlock_abi", "probe_isolation"]

BUBBLEWRAP = "namespaces (bubblewrap)"
OWN_NAMESPACES = "namespaces (own)"
UNPRIVILEGED = "unprivileged user"

_SYS_LANDLOCK_CREATE_RULESET = 444  # same number on x86_64 and aarch64
_LANDLOCK_CREATE_RULESET_VERSION = 1


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
    problem = probe_mode("bubblewrap")
    if problem is not None:
        return IsolationLayer(BUBBLEWRAP, False, problem)
    return IsolationLayer(BUBBLEWRAP, True, f"{shutil.which('bwrap')}: mount, pid, net, ipc, uts")


def _probe_own_namespaces() -> IsolationLayer:
    problem = probe_mode("namespaces")
    detail = problem or "mount, pid, net, ipc, uts, cgroup (built by the service as root)"
    return IsolationLayer(OWN_NAMESPACES, problem is None, detail)


def _probe_user() -> IsolationLayer:
    if os.geteuid() == 0:
        return IsolationLayer(
            UNPRIVILEGED, True, "root service: each sandbox switches to a user of its own"
        )
    return IsolationLayer(
        UNPRIVILEGED, True, f"the service's own uid {os.getuid()}, no capabilities"
    )


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
    layers = [_probe_bubblewrap(), _probe_own_namespaces(), _probe_user(), _probe_seccomp()]
    layers += [_probe_landlock(), _probe_rlimits()]
    layers.append(_probe_cgroups())
    return layers
