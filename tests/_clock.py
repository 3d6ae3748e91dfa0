"""A fake clock for window, alert and timer tests: time only moves when a test says so."""

from __future__ import annotations


class FakeClock:
    """Callable returning the current fake time in seconds."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
