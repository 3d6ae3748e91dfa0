"""`run_demo`: every section in order, then the seed's "Performance Highlights" with measured values."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from companion.demo import _application, _optimization
from companion.demo._section import Section

__all__ = ["SECTIONS", "DemoReport", "run_demo"]

SECTIONS: tuple[Callable[[], Section], ...] = (
    _optimization.profiling,
    _optimization.caching,
    _optimization.monitoring,
    _optimization.pipeline,
    _application.execution,
    _application.tools,
    _application.knowledge,
)


@dataclass
class DemoReport:
    """The sections, the highlights and how long the whole demo took."""

    sections: list[Section] = field(default_factory=list)
    highlights: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "sections": [section.to_dict() for section in self.sections],
            "highlights": self.highlights,
            "elapsed_s": self.elapsed_s,
        }


def run_demo(on_section: Callable[[Section], None] | None = None) -> DemoReport:
    """Run every section (each on fresh objects) and summarise them."""
    started = time.perf_counter()
    report = DemoReport()
    for run in SECTIONS:
        section = run()
        report.sections.append(section)
        if on_section is not None:
            on_section(section)
    report.elapsed_s = time.perf_counter() - started
    report.highlights = _highlights({s.title[:1]: s.figures for s in report.sections})
    return report


def _highlights(figures: dict[str, dict[str, Any]]) -> list[str]:
    caching, monitoring, pipeline = figures["2"], figures["3"], figures["4"]
    execution, tools = figures["5"], figures["6"]
    lines = []
    if "python_median_ns" in execution:
        lines.append(
            f"Python execution: {execution['python_median_ns'] / 1e6:.2f} ms "
            f"(sandboxed; JavaScript {execution['javascript_median_ns'] / 1e6:.2f} ms)"
        )
    else:
        lines.append("Python execution: skipped (no sandbox on this host)")
    lines.append(
        f"Cache speedup: {caching['speedup']:.0f}× (L1 hit {caching['cached_ns'] / 1e3:.2f} µs vs "
        f"the uncached call {caching['uncached_ns'] / 1e3:.0f} µs); L2 promotion "
        f"{caching['l2_promotion_ns'] / 1e3:.2f} µs"
    )
    if tools:
        lines.append(
            f"Tool speedup: {tools['add_ns'] / tools['add_cached_ns']:.1f}× with caching "
            f"({tools['add_ns'] / 1e3:.2f} → {tools['add_cached_ns'] / 1e3:.2f} µs)"
        )
    rss_mib = psutil.Process().memory_info().rss / 2**20
    lines.append(f"Memory usage: {rss_mib:.0f} MiB RSS (this process, sandbox pool closed)")
    lines.append(
        f"Cache hit rate: {pipeline['cache_hit_rate']:.0%} in the pipeline, "
        f"{monitoring['cache_hit_rate']:.0%} in the monitoring sample"
    )
    active = monitoring["active_alerts"]
    lines.append(
        f"Alerts: {len(monitoring['alerts'])} transitions (fired and resolved), {active} active"
        + (" (healthy system)" if active == 0 else "")
    )
    return lines
