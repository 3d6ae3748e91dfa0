"""Usable CPUs: affinity capped by a real cgroup CPU quota, and the quota files of both versions."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion._cpus import cgroup_cpu_limit

V1_CPU = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")
PROBE = "from companion._cpus import usable_cpus, cgroup_cpu_limit\nprint(usable_cpus(), cgroup_cpu_limit())"


def _writable_cpu_hierarchy() -> tuple[str, Path] | None:
    """("v1" or "v2", the directory to create cgroups in) when this process may make them."""
    if os.geteuid() != 0:
        return None
    if (V1_CPU / "cpu.cfs_quota_us").exists() and os.access(V1_CPU, os.W_OK):
        return "v1", V1_CPU
    controllers = V2_ROOT / "cgroup.subtree_control"
    if (
        controllers.exists()
        and "cpu" in controllers.read_text().split()
        and os.access(V2_ROOT, os.W_OK)
    ):
        return "v2", V2_ROOT
    return None


HIERARCHY = _writable_cpu_hierarchy()
needs_cgroups = pytest.mark.skipif(
    HIERARCHY is None, reason="needs root and a writable cgroup cpu controller"
)


def _set_quota(directory: Path, version: str, cpus: float | None) -> None:
    if version == "v1":
        quota = -1 if cpus is None else int(cpus * 100_000)
        (directory / "cpu.cfs_period_us").write_text("100000")
        (directory / "cpu.cfs_quota_us").write_text(str(quota))
    else:
        quota_text = "max" if cpus is None else str(int(cpus * 100_000))
        (directory / "cpu.max").write_text(f"{quota_text} 100000")


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A fresh cgroup under the cpu controller, removed afterwards."""
    assert HIERARCHY is not None
    root = HIERARCHY[1]
    directory = root / f"companion-test-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    try:
        yield directory
    finally:
        for child in sorted(directory.glob("*/"), reverse=True):
            if child.is_dir():
                child.rmdir()
        directory.rmdir()


def _probe_in(directory: Path) -> tuple[int, int | None]:
    """What a new Python process placed in the cgroup at `directory` counts."""
    script = f'echo $$ > {directory / "cgroup.procs"} && exec "$0" -c "$1"'
    out = subprocess.run(
        ["sh", "-c", script, sys.executable, PROBE],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    return int(out[0]), None if out[1] == "None" else int(out[1])


@needs_cgroups
def test_a_quota_under_the_affinity_caps_the_usable_cpus(cgroup: Path) -> None:
    assert HIERARCHY is not None
    version = HIERARCHY[0]
    _set_quota(cgroup, version, 0.5)
    assert _probe_in(cgroup) == (1, 1)  # half a CPU of time: one
    if len(os.sched_getaffinity(0)) >= 2:
        _set_quota(cgroup, version, 1.5)
        assert _probe_in(cgroup) == (2, 2)  # rounded up, not down to one


@needs_cgroups
def test_a_parents_quota_holds_for_a_child_without_one(cgroup: Path) -> None:
    assert HIERARCHY is not None
    version = HIERARCHY[0]
    if version == "v2":
        (cgroup / "cgroup.subtree_control").write_text("+cpu")
    child = cgroup / "inner"
    child.mkdir()
    _set_quota(cgroup, version, 0.5)
    _set_quota(child, version, None)
    assert _probe_in(child) == (1, 1)


def _tree(tmp_path: Path, cgroups: str, mounts: str, files: dict[str, str]) -> tuple[Path, Path]:
    """`/proc/self/cgroup` and `/proc/self/mountinfo` as given (`{fs}` stands for the tree's
    root), with the cgroup files under it."""
    root = tmp_path / "fs"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    proc = tmp_path / "cgroup"
    proc.write_text(cgroups)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(mounts.replace("{fs}", str(root)))
    return proc, mountinfo


V2_MOUNT = "30 23 0:26 / {fs} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_v2_quota_files_are_read_up_to_the_mount(tmp_path: Path) -> None:
    proc, mounts = _tree(
        tmp_path,
        "0::/app/worker\n",
        V2_MOUNT,
        {"app/cpu.max": "250000 100000\n", "app/worker/cpu.max": "max 100000\n"},
    )
    assert cgroup_cpu_limit(proc, mounts) == 3  # the parent's 2.5 CPUs, rounded up
    (tmp_path / "fs/app/worker/cpu.max").write_text("50000 100000\n")
    assert cgroup_cpu_limit(proc, mounts) == 1
    (tmp_path / "fs/app/worker/cpu.max").write_text("max 100000\n")
    (tmp_path / "fs/app/cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(proc, mounts) is None


def test_a_mount_showing_part_of_the_hierarchy_is_walked_from_its_root(tmp_path: Path) -> None:
    """A container without a cgroup namespace: its cgroup path is the host's, and the mount
    shows only the container's own cgroup (`/docker/abc`) at the mount point."""
    proc, mounts = _tree(
        tmp_path,
        "4:cpu,cpuacct:/docker/abc/inner\n0::/\n",
        "40 30 0:33 /docker/abc {fs}/cpu\\040acct rw - cgroup cgroup rw,cpu,cpuacct\n",
        {
            "cpu acct/cpu.cfs_quota_us": "150000\n",
            "cpu acct/cpu.cfs_period_us": "100000\n",
            "cpu acct/inner/cpu.cfs_quota_us": "-1\n",
            "cpu acct/inner/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_limit(proc, mounts) == 2
    outside = tmp_path / "outside"
    outside.write_text("4:cpu,cpuacct:/system.slice/other\n")
    assert cgroup_cpu_limit(outside, mounts) is None  # not under what the mount shows


def test_v1_quota_files_of_the_cpu_hierarchy(tmp_path: Path) -> None:
    proc, mounts = _tree(
        tmp_path,
        "5:memory:/box\n4:cpu,cpuacct:/box\n0::/\n",
        "41 30 0:34 / {fs}/memory rw - cgroup cgroup rw,memory\n"
        "42 30 0:35 / {fs}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
        {
            "cpu,cpuacct/box/cpu.cfs_quota_us": "400000\n",
            "cpu,cpuacct/box/cpu.cfs_period_us": "100000\n",
            "memory/box/cpu.cfs_quota_us": "100000\n",  # not the cpu hierarchy: never read
        },
    )
    assert cgroup_cpu_limit(proc, mounts) == 4
    (tmp_path / "fs/cpu,cpuacct/box/cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(proc, mounts) is None


@pytest.mark.parametrize("cpu_max", ["", "max", "fast 100000", "100000 0", "-5 100000", "1 2 3"])
def test_malformed_or_missing_files_mean_no_quota(tmp_path: Path, cpu_max: str) -> None:
    proc, mounts = _tree(tmp_path, "0::/app\n", V2_MOUNT, {"app/cpu.max": cpu_max})
    assert cgroup_cpu_limit(proc, mounts) is None
    assert cgroup_cpu_limit(tmp_path / "missing", mounts) is None
    assert cgroup_cpu_limit(proc, tmp_path / "missing") is None
    garbled = tmp_path / "garbled"
    garbled.write_text("not a mount line\n1 2 3 4 5 6 - cgroup2\n")
    assert cgroup_cpu_limit(proc, garbled) is None
