"""Memory figures of process trees, for the rows that report bytes."""

from __future__ import annotations

import psutil

__all__ = ["tree_pss_bytes"]


def tree_pss_bytes(pid: int) -> int:
    """PSS of `pid` and every process below it (a sandbox's zygote, template and children; a
    kernel and its helpers): each shared page counted once across the processes sharing it."""
    top = psutil.Process(pid)
    total = 0
    for process in (top, *top.children(recursive=True)):
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            continue
    return total
