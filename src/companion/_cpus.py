"""How many CPUs this process may use: its affinity, capped by its cgroup's CPU quota.

`os.cpu_count()` is the host's count. In a container limited with `--cpus 2` on a 64-core host it
says 64, and a pool sized from it starts 128 sandboxes that share two CPUs' worth of time. The
quota is `cpu.max` under cgroup v2 (`"max 100000"` or `"200000 100000"`: quota and period in µs)
or `cpu.cfs_quota_us` / `cpu.cfs_period_us` under v1 (quota -1: none); the tightest of the
process's cgroup and its ancestors applies, rounded up to whole CPUs.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["cgroup_cpu_limit", "usable_cpus"]

_PROC_CGROUP = Path("/proc/self/cgroup")
_MOUNTINFO = Path("/proc/self/mountinfo")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), capped by its cgroup's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(cpus, limit) if limit is not None else cpus)


def cgroup_cpu_limit(proc_cgroup: Path = _PROC_CGROUP, mountinfo: Path = _MOUNTINFO) -> int | None:
    """The CPU quota of the process's cgroups in whole CPUs (rounded up); None without one.

    Each cgroup path in `proc_cgroup` is found under the mount of its hierarchy (`mountinfo`
    says where, and which part of the hierarchy it shows: inside a container without a cgroup
    namespace the mount's root is the container's own cgroup, not `/`). Unreadable or malformed
    files count as no quota: the answer only ever lowers a default.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
        mounts = _cgroup_mounts(mountinfo.read_text())
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":  # v2: one unified hierarchy
            mount = mounts.get("cgroup2")
            if mount is not None:
                quotas += _quotas(*mount, path, _v2_quota)
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's hierarchy
            mount = mounts.get("cpu")
            if mount is not None:
                quotas += _quotas(*mount, path, _v1_quota)
    return math.ceil(min(quotas)) if quotas else None


def _cgroup_mounts(mountinfo: str) -> dict[str, tuple[str, Path]]:
    """`(root within the hierarchy, mount point)` of the cgroup2 mount and of the v1 mount
    holding the cpu controller, by "cgroup2" and "cpu" (the first of each)."""
    mounts: dict[str, tuple[str, Path]] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 4:
            continue
        fstype, options = fields[separator + 1], fields[separator + 3].split(",")
        root, point = _unescape(fields[3]), Path(_unescape(fields[4]))
        if fstype == "cgroup2":
            mounts.setdefault("cgroup2", (root, point))
        elif fstype == "cgroup" and "cpu" in options:
            mounts.setdefault("cpu", (root, point))
    return mounts


def _unescape(field: str) -> str:
    r"""A mountinfo path: spaces, tabs, newlines and backslashes come octal-escaped (`\040`)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _quotas(root: str, point: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas of the cgroup at `path` and of its ancestors up to what the mount shows."""
    if root != "/":
        if path != root and not path.startswith(root + "/"):
            return []  # a cgroup outside what the mount shows: nothing of it can be read
        path = path[len(root) :]
    parts = [part for part in path.strip("/").split("/") if part]
    return [
        quota
        for depth in range(len(parts), -1, -1)
        if (quota := read(point.joinpath(*parts[:depth]))) is not None
    ]


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()
        return None if quota == "max" or int(quota) <= 0 else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError, ZeroDivisionError):
        return None
