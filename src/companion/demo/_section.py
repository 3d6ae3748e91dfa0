"""One section of the demo: a title, the lines a person reads, and the figures a machine reads."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Section", "median_ns"]


@dataclass
class Section:
    """What one part of the demo showed."""

    title: str
    lines: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def say(self, line: str) -> None:
        """Add a line for the reader."""
        self.lines.append(line)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "title": self.title,
            "lines": self.lines,
            "figures": self.figures,
            "skipped": self.skipped,
        }


def median_ns(call: Callable[[], object], repeat: int = 200, warmup: int = 5) -> float:
    """Median wall time of `call` in ns, after `warmup` untimed calls."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - started)
    return float(statistics.median(samples))
