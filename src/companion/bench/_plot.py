"""The chart of `companion bench --plot`: every row's figure against its target, one bar each.

A bar is the figure divided by the bound the target sets (a ratio over its maximum ratio, a median
over its maximum median), so every row shares one axis and the line at 1 is "the target": bars
left of it pass. matplotlib is in the `bench` extra and draws with the headless Agg backend.
"""

from __future__ import annotations

from pathlib import Path

from companion.bench._suite import Report
from companion.errors import InvalidInput

__all__ = ["plot"]

_PASS, _SHORT = "#2e7d32", "#c62828"


def plot(report: Report, path: Path) -> None:
    """Draw `report` to `path` (.png or .svg)."""
    if path.suffix.lower() not in {".png", ".svg"}:
        raise InvalidInput(f"--plot writes .png or .svg, not {path.name!r}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [row for row in report.rows if row.target_fraction is not None]
    labels = [f"{row.group}: {row.name[:60]}" for row in rows]
    values = [max(row.target_fraction or 0.0, 1e-3) for row in rows]
    colours = [_PASS if row.passed else _SHORT for row in rows]
    figure, axes = plt.subplots(figsize=(11, 0.38 * len(rows) + 1.6))
    try:
        positions = range(len(rows))
        axes.barh(list(positions), values, color=colours)
        axes.set_yticks(list(positions), labels, fontsize=8)
        axes.invert_yaxis()
        axes.set_xscale("log")
        axes.set_xlim(min([*values, 0.5]) / 1.5, max([*values, 1.0]) * 3)  # room for the labels
        axes.axvline(1.0, color="black", linewidth=1, linestyle="--")
        axes.set_xlabel("figure ÷ target bound (log scale; ≤ 1 passes, green pass, red short)")
        for position, row, value in zip(positions, rows, values, strict=True):
            text = row.target if row.ratio is None else f"{row.ratio:.2f}× peer; {row.target}"
            axes.annotate(text, (value, position), xytext=(4, 0), textcoords="offset points",
                          va="center", fontsize=7)  # fmt: skip
        machine = report.machine
        axes.set_title(
            f"companion bench ({report.mode}), {report.started_at}: {machine['cpu']}, "
            f"{machine['cores']} cores, Python {machine['python']}",
            fontsize=9,
        )
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)
