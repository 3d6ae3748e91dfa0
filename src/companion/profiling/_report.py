"""The profiler's report: rows of `ProfileStats` as a text table or JSON, sorted by any column."""

from __future__ import annotations

from typing import Literal

import orjson

from companion.errors import InvalidInput
from companion.profiling._stats import ProfileStats

__all__ = ["SORT_KEYS", "render"]

SORT_KEYS = (
    "name",
    "count",
    "errors",
    "total_s",
    "min_s",
    "max_s",
    "avg_s",
    "p50_s",
    "p95_s",
    "p99_s",
    "stddev_s",
)
_TIME_COLUMNS = SORT_KEYS[3:]


def render(
    rows: list[ProfileStats], *, sort_by: str, fmt: Literal["text", "json"], limit: int | None
) -> str:
    """Sort descending by `sort_by` (ascending for `name`), keep `limit` rows, render."""
    if sort_by == "name":
        rows = sorted(rows, key=lambda r: r.name)
    else:
        rows = sorted(rows, key=lambda r: getattr(r, sort_by) or 0.0, reverse=True)
    shown = rows if limit is None else rows[:limit]
    if fmt == "json":
        body = {
            "sort_by": sort_by,
            "names": len(rows),
            "shown": len(shown),
            "stats": [r.to_dict() for r in shown],
        }
        return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
    if fmt != "text":
        raise InvalidInput(f"report format must be 'text' or 'json', got {fmt!r}")
    return _text(shown, total=len(rows), sort_by=sort_by)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e6:.2f}"


def _text(rows: list[ProfileStats], *, total: int, sort_by: str) -> str:
    width = max([len(r.name) for r in rows] + [4])
    width = min(width, 60)
    heads = [c.removesuffix("_s") + ("_us" if c in _TIME_COLUMNS else "") for c in SORT_KEYS[1:]]
    lines = [f"{'name':<{width}} " + " ".join(f"{h:>10}" for h in heads)]
    for r in rows:
        cells = [f"{r.count:>10}", f"{r.errors:>10}"]
        cells += [f"{_us(getattr(r, c)):>10}" for c in _TIME_COLUMNS]
        lines.append(f"{r.name[:width]:<{width}} " + " ".join(cells))
    lines.append(f"({len(rows)} of {total} names, sorted by {sort_by})")
    return "\n".join(lines) + "\n"
