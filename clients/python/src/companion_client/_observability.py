"""The optimization layer's values: cache counters and alerts (admin routes).

The monitoring and profiling reports stay plain JSON (`dict`): they are wide, nested tables whose
shape docs/monitoring.md and docs/profiling.md describe, read by people and dashboards more than by
code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Alert", "Alerts", "CacheStats", "TierStats"]


@dataclass(frozen=True, slots=True)
class TierStats:
    """Counters of one cache tier since the service started; `hit_rate` is hits over lookups."""

    size: int
    max_entries: int | None
    hits: int
    misses: int
    evictions: int
    expirations: int
    promotions: int
    demotions: int
    errors: int
    hit_rate: float

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TierStats:
        """Decode one tier of `GET /v1/cache/stats`."""
        counts = {
            name: int(raw.get(name, 0))
            for name in (
                "size",
                "hits",
                "misses",
                "evictions",
                "expirations",
                "promotions",
                "demotions",
                "errors",
            )
        }
        return cls(
            max_entries=raw.get("max_entries"), hit_rate=float(raw.get("hit_rate", 0.0)), **counts
        )


@dataclass(frozen=True, slots=True)
class CacheStats:
    """`GET /v1/cache/stats`: the in-process tier (`l1`), the shared one (`l2`: Redis when
    configured), and the hottest keys with their hit counts."""

    l1: TierStats
    l2: TierStats
    hot_keys: list[tuple[str, int]]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CacheStats:
        """Decode `GET /v1/cache/stats`."""
        return cls(
            l1=TierStats.from_json(raw.get("l1") or {}),
            l2=TierStats.from_json(raw.get("l2") or {}),
            hot_keys=[(str(key), int(hits)) for key, hits in raw.get("hot_keys", [])],
            raw=dict(raw),
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert: the threshold's `name`, the `metric` and `stat` it watches (with `labels`), its
    `level`, the `threshold` and the `value` seen, its `state`, and when it fired and resolved
    (Unix seconds)."""

    name: str
    metric: str
    stat: str
    labels: dict[str, str]
    level: str
    threshold: float
    value: float
    state: str
    fired_at_s: float | None
    resolved_at_s: float | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Alert:
        """Decode one alert of `GET /v1/alerts`."""
        return cls(
            name=str(raw.get("name", "")),
            metric=str(raw.get("metric", "")),
            stat=str(raw.get("stat", "")),
            labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
            level=str(raw.get("level", "")),
            threshold=float(raw.get("threshold", 0.0)),
            value=float(raw.get("value", 0.0)),
            state=str(raw.get("state", "")),
            fired_at_s=raw.get("fired_at_s"),
            resolved_at_s=raw.get("resolved_at_s"),
        )


@dataclass(frozen=True, slots=True)
class Alerts:
    """`GET /v1/alerts`: the alerts firing now, and the recent history (fired and resolved)."""

    active: list[Alert]
    history: list[Alert]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Alerts:
        """Decode `GET /v1/alerts`."""
        return cls(
            [Alert.from_json(item) for item in raw.get("active", [])],
            [Alert.from_json(item) for item in raw.get("history", [])],
        )
