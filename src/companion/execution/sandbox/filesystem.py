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

__all__ = ["seal"]

_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_ST_RDONLY = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _remount(target: str, flags: int, data: str | None = None) -> None:
    encoded = data.encode() if data else None
    if _libc.mount(None, target.encode(), None, ctypes.c_ulong(_MS_REMOUNT | flags), encoded):
        errno = ctypes.get_errno()
        raise OSError(errno, f"remount {target}: {os.strerror(errno)}")


def seal(scratch_root: str, scratch_bytes: int, scratch_files: int, devices: Iterable[str]) -> None:
    """Bound the scratch tmpfs in bytes and inodes, and make every device node read-only."""
    _remount(
        scratch_root, _MS_NOSUID | _MS_NODEV, f"size={scratch_bytes},nr_inodes={scratch_files}"
    )
    # Root's and sticky: shared with the sandbox user, never its own to chmod shut or replace.
    os.chown(scratch_root, 0, 0)
    os.chmod(scratch_root, 0o1777)  # noqa: S103 - a private tmpfs inside the sandbox
    limits = os.statvfs(scratch_root)
    if limits.f_files != scratch_files:
        raise OSError(f"the scratch tmpfs holds {limits.f_files} inodes, not {scratch_files}")
    for name in devices:
        node = f"/dev/{name}"
        _remount(node, _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NOEXEC)
        if not os.statvfs(node).f_flag & _ST_RDONLY:
            raise OSError(f"{node} is still writable")
