"""`TraceRing`: the deep traces kept for reading back, each with the tenant it belongs to.

Held in `AppState`; `_tracing.py` fills it (the middleware) and reads it (the route).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from companion.errors import NotFound
from companion.profiling import Trace

__all__ = ["TraceRing"]


class TraceRing:
    """The last `capacity` finished traces, by id, each with the tenant it belongs to."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._traces: OrderedDict[str, tuple[str, Trace]] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, trace: Trace, tenant: str) -> str:
        """Store `tenant`'s `trace`, dropping the oldest past capacity; returns its id."""
        trace_id = secrets.token_hex(8)
        with self._lock:
            self._traces[trace_id] = (tenant, trace)
            while len(self._traces) > self._capacity:
                self._traces.popitem(last=False)
        return trace_id

    def get(self, trace_id: str, tenant: str) -> Trace:
        """`tenant`'s trace, or `NotFound`: dropped from the ring, or another tenant's.

        The same answer for both, so an id never tells whether another tenant has that trace.
        """
        with self._lock:
            kept = self._traces.get(trace_id)
        if kept is None or kept[0] != tenant:
            raise NotFound(f"No trace {trace_id!r} (only the last {self._capacity} are kept).")
        return kept[1]
