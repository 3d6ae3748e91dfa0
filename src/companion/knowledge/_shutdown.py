"""Bounded shutdown: every wait while stopping has a deadline, and what misses it is logged.

A library that swallows `asyncio.CancelledError` turns `task.cancel(); await task` into a hang
(seen with the embedding queue on the PostgreSQL pool under load: the task was "cancelling" yet
parked on its next wait, and `close()` awaited it forever). Shutdown must finish whatever a library
does with cancellation, so a part that does not stop in time is left behind, named in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["cancel_within", "finish_within"]

_log = logging.getLogger("companion.knowledge")


async def cancel_within(task: asyncio.Task[Any], timeout_s: float, what: str) -> bool:
    """Cancel `task` and wait for it at most `timeout_s`; False (and a log line) if it lives on.

    It is cancelled once only: a second cancellation could cut short the clean-up a well-behaved
    task runs after the first one (returning a connection to its pool, say).
    """
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        _log.error(
            "%s did not stop within %.1f s of being cancelled (a library below it swallowed the "
            "cancellation?); shutdown goes on without it",
            what,
            timeout_s,
        )
        return False
    if not task.cancelled() and task.exception() is not None:
        _log.error("%s failed while stopping", what, exc_info=task.exception())
    return True


async def finish_within(step: Coroutine[Any, Any, None], timeout_s: float, what: str) -> bool:
    """Run `step` for at most `timeout_s`; past that it is cancelled, logged and not awaited.

    An error of `step` itself is raised as usual: only its hanging is contained.
    """
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()  # our caller gave up: so does the step, without waiting for it either
        raise
    if not done:
        task.cancel()
        _log.error("%s did not finish within %.1f s; shutdown goes on without it", what, timeout_s)
        return False
    task.result()
    return True
