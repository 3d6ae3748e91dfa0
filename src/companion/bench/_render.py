"""Report renderings: a Markdown table for docs/benchmarks.md and a rich table for the terminal."""

from __future__ import annotations

import functools

from companion.bench._case import format_figure
from companion.bench._runner import RowResult
from companion.bench._suite import Report

__all__ = ["HEADERS", "row_cells", "to_markdown"]

HEADERS = (
    *("group", "what", "ours p50", "ours p95", "spread", "peer", "peer p50", "ratio"),
    *("seed", "target", "verdict"),
)


def _verdict(row: RowResult) -> str:
    verdict = "report" if row.passed is None else "pass" if row.passed else "short"
    # A failed sample must show in the terminal too, which has no notes column.
    failed = [
        f"{n} of {side} failed"
        for side, n in (("ours", row.ours_failed), ("peer", row.peer_failed))
        if n
    ]
    return f"{verdict} ({', '.join(failed)})" if failed else verdict


def row_cells(row: RowResult) -> list[str]:
    """The cells of one row, in `HEADERS` order."""
    show = functools.partial(format_figure, unit=row.unit)
    return [
        row.group,
        row.name,
        show(row.ours_median_ns),
        show(row.ours_p95_ns),
        f"±{row.ours_spread * 50:.0f}%",
        row.peer_name or "–",
        show(row.peer_median_ns) if row.peer_median_ns is not None else "–",
        f"{row.ratio:.2f}×" if row.ratio is not None else "–",
        row.seed_figure or "–",
        row.target,
        _verdict(row),
    ]


def to_markdown(report: Report) -> str:
    """The report as a Markdown section: machine facts, then one table row per case."""
    machine = report.machine
    lines = [
        f"Run: {report.started_at} ({report.mode}) on {machine['cpu']}, {machine['cores']} cores, "
        f"Python {machine['python']}, load average {machine['load_average']}.",
        "",
        "| " + " | ".join((*HEADERS, "notes")) + " |",
        "|" + "---|" * (len(HEADERS) + 1),
    ]
    lines += ["| " + " | ".join((*row_cells(row), row.note or "")) + " |" for row in report.rows]
    lines += ["", "Spread is half the interquartile range of our samples, relative to the median."]
    return "\n".join(lines) + "\n"
