"""The whole suite: which cases exist, running them, and the machine the figures came from."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from companion.bench._case import Case
from companion.bench._runner import Budget, RowResult, run_case
from companion.errors import InvalidInput

__all__ = ["GROUPS", "Report", "load_cases", "machine_facts", "run_suite"]

# Each group's cases live in a module exposing `cases() -> list[Case]`; imported only when asked for.
GROUPS: dict[str, str] = {
    "cache": "companion.bench.cases_cache",
    "monitoring": "companion.bench.cases_monitoring",
    "execution": "companion.bench.cases_execution",
    "sessions": "companion.bench.cases_sessions",
    "tools": "companion.bench.cases_tools",
    "search": "companion.bench.cases_search",
    "relevance": "companion.bench.cases_relevance",
    "documents": "companion.bench.cases_documents",
    "scale-out": "companion.bench.cases_scaleout",
    "http": "companion.bench.cases_http",
    "telemetry": "companion.bench.cases_telemetry",
}


def load_cases(only: Sequence[str] | None = None, *, quick: bool = False) -> list[Case]:
    """The cases of the named groups (all groups when `only` is empty); `quick` for smoke runs."""
    wanted = list(only) if only else list(GROUPS)
    unknown = sorted(set(wanted) - GROUPS.keys())
    if unknown:
        raise InvalidInput(
            f"unknown benchmark group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}"
        )
    cases: list[Case] = []
    for group in wanted:
        module = importlib.import_module(GROUPS[group])
        takes_quick = "quick" in inspect.signature(module.cases).parameters
        cases.extend(module.cases(quick=quick) if takes_quick else module.cases())
    return cases


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, Any]:
    """CPU, cores, Python and load: what a reader needs to judge the absolute figures."""
    load_1m, load_5m, load_15m = os.getloadavg()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": [round(load_1m, 2), round(load_5m, 2), round(load_15m, 2)],
    }


@dataclass
class Report:
    """Every row of one run, with when and where it ran."""

    mode: str
    rows: list[RowResult] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine_facts)
    started_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "mode": self.mode,
            "started_at": self.started_at,
            "machine": self.machine,
            "rows": [asdict(row) for row in self.rows],
        }


def run_suite(
    cases: Sequence[Case],
    budget: Budget,
    mode: str,
    on_row: Callable[[Case, RowResult], None] | None = None,
) -> Report:
    """Run `cases` one after another within `budget` each."""
    report = Report(mode=mode)
    for case in cases:
        row = run_case(case, budget)
        report.rows.append(row)
        if on_row is not None:
            on_row(case, row)
    return report
