"""Finishing the sandbox's filesystem from inside, before the zygote gives up its privileges.

Stdlib only. Bubblewrap cannot express two things the sandbox needs, so the zygote (still holding
CAP_SYS_ADMIN of its mount namespace) does them itself, in both sandbox modes:

- the scratch tmpfs gets an inode bound as well as a size bound: a tmpfs caps bytes, not files,
  and a snippet made 920,000 directories in 4 s (1.2 GB of kernel memory that no rlimit counts,
  and seconds of wiping for the next run);
- the host's device nodes become read-only mounts that still allow device access: writing
  `/dev/null` works, but a `utime` with no times (allowed to anyone who may write the node)
  no longer touches the host's inode. Bubblewrap's `--remount-ro` would add `nodev`.

Each step is checked afterwards; a failure stops the zygote before anything untrusted runs.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

__all__ = [
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "mount",
    "seal",
]

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
_ST_RDONLY = 1

_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2), raising `OSError` with the path on failure."""

    def encode(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    arguments = (encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags))
    if _libc.mount(*arguments, encode(data or None)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source or fstype} on {target}: {os.strerror(errno)}")


def seal(scratch_root: str, scratch_bytes: int, scratch_files: int, devices: Iterable[str]) -> None:
    """Bound the scratch tmpfs in bytes and inodes, and make every device node read-only."""
    bounds = f"size={scratch_bytes},nr_inodes={scratch_files}"
    mount(None, scratch_root, None, MS_REMOUNT | MS_NOSUID | MS_NODEV, bounds)
    # Root's and sticky: shared with the sandbox user, never its own to chmod shut or replace.
    os.chown(scratch_root, 0, 0)
    os.chmod(scratch_root, 0o1777)  # noqa: S103 - a private tmpfs inside the sandbox
    limits = os.statvfs(scratch_root)
    if limits.f_files != scratch_files:
        raise OSError(f"the scratch tmpfs holds {limits.f_files} inodes, not {scratch_files}")
    for name in devices:
        node = f"/dev/{name}"
        mount(None, node, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
        if not os.statvfs(node).f_flag & _ST_RDONLY:
            raise OSError(f"{node} is still writable")
