"""The embedded store's process lock: one process at a time holds a data directory's store.

Two processes writing one SQLite file and one set of tantivy and vector files would each trust its
own in-memory view of them; the second opener is refused instead, by name of the holder's pid.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from companion.knowledge._errors import StoreInUse

__all__ = ["take_store_lock"]


def take_store_lock(root: Path, wait_s: float) -> int:
    """Hold `root/store.lock` (the returned descriptor; closing it releases the lock), waiting up
    to `wait_s` for a process that is closing it, else `StoreInUse` naming the holder's pid."""
    # flock, not fcntl record locks: those are per process, so a second store in the same
    # process would share the lock instead of being refused, and closing any descriptor of
    # the file would drop it. The descriptor is close-on-exec: sandbox processes never hold it.
    fd = os.open(root / "store.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)  # real time: another process is closing the store
                continue
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreInUse(
                f"the knowledge store in {root} is open in another process (pid "
                f"{holder}); the embedded store serves one process at a time: stop that one, "
                "or use PostgreSQL (COMPANION_DATABASE_URL) to share a store between processes"
            ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
