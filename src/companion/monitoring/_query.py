"""Reading statistics out of histogram series: for `request_stats`, thresholds and reports."""

from __future__ import annotations

import math
import re
from typing import cast

from companion.monitoring._errors import InvalidQuantile, InvalidWindow
from companion.monitoring._metrics import Histogram, HistogramChild
from companion.monitoring._sketch import QuantileSketch, check_quantile

__all__ = ["check_window", "histogram_stat", "quantile_of", "window_of"]

_PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)")


def window_of(family: Histogram, endpoint: str, window_s: float | None) -> QuantileSketch:
    """The all-time or windowed sketch of one series (empty if it does not exist)."""
    child = family.get(endpoint)
    if window_s is not None:
        check_window(family, window_s)
    if child is None:
        return QuantileSketch()
    return child.total() if window_s is None else child.window(window_s)


def check_window(family: Histogram, window_s: float) -> None:
    """Raise `InvalidWindow` unless the family keeps `window_s` of history."""
    limit = family.max_window_s
    if not (isinstance(window_s, int | float) and 0 < window_s <= limit):
        raise InvalidWindow(f"window_s must be in (0, {limit:g}] seconds, got {window_s!r}")


def quantile_of(stat: str) -> float | None:
    """The quantile a `pNN` stat names, None for count/sum/avg/min/max; else `InvalidQuantile`."""
    if stat in ("count", "sum", "avg", "min", "max"):
        return None
    match = _PERCENTILE.fullmatch(stat)
    if match is None:
        raise InvalidQuantile(f"unknown stat {stat!r}: use count, sum, avg, min, max or p<0-100>")
    q = float(match.group(1)) / 100.0
    check_quantile(q)
    return q


def histogram_stat(child: HistogramChild, stat: str, window_s: float | None) -> float:
    """One statistic of a series; NaN when there is no data."""
    sketch = child.total() if window_s is None else child.window(window_s)
    value: float | None
    if stat == "count":
        value = sketch.count
    elif stat == "sum":
        value = sketch.sum
    elif stat == "avg":
        value = sketch.sum / sketch.count if sketch.count else None
    elif stat == "min":
        value = sketch.min
    elif stat == "max":
        value = sketch.max
    else:
        value = sketch.quantile(cast(float, quantile_of(stat)))
    # No data reads as NaN, which breaches nothing: a firing alert resolves when traffic stops.
    return math.nan if value is None else value
