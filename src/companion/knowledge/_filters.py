"""Metadata filters: `{field: value}` equality, `{field: {"in": [...]}}`, ranges (`gt`, `gte`, `lt`, `lte`).

A filter is parsed once into `Condition`s (so a bad one is rejected before anything runs) and then
either evaluated in Python or rendered as SQL for SQLite's JSON1 or PostgreSQL's jsonb.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from companion.knowledge._errors import InvalidFilter

__all__ = ["Condition", "matches", "parse_filter", "to_postgres", "to_sqlite"]

Scalar = str | int | float | bool
Operator = Literal["eq", "in", "gt", "gte", "lt", "lte"]
_FIELD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
_RANGE_OPS = ("gt", "gte", "lt", "lte")
MAX_IN_VALUES = 1000


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on one top-level metadata field; `values` has one item except for `in`."""

    field: str
    op: Operator
    values: tuple[Scalar, ...]


def parse_filter(raw: object) -> tuple[Condition, ...]:
    """Validate `raw` and return its conditions (all must hold), or raise `InvalidFilter`."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise InvalidFilter("filter must be a JSON object of metadata field -> condition")
    conditions: list[Condition] = []
    for name, spec in raw.items():
        if not isinstance(name, str) or not _FIELD.fullmatch(name):
            raise InvalidFilter(f"filter field {name!r} is not a valid metadata field name")
        if isinstance(spec, Mapping):
            conditions.extend(_parse_operators(name, spec))
        else:
            conditions.append(Condition(name, "eq", (_scalar(name, spec),)))
    return tuple(conditions)


def _parse_operators(name: str, spec: Mapping[Any, Any]) -> list[Condition]:
    if not spec:
        raise InvalidFilter(f"filter on {name!r} is an empty object")
    conditions: list[Condition] = []
    for op, value in spec.items():
        if op == "in":
            if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
                raise InvalidFilter(
                    f"filter {name!r} 'in' needs a list of 1 to {MAX_IN_VALUES} values"
                )
            conditions.append(Condition(name, "in", tuple(_scalar(name, v) for v in value)))
        elif op in _RANGE_OPS:
            bound = _scalar(name, value)
            if isinstance(bound, bool):
                raise InvalidFilter(f"filter {name!r} {op!r} needs a number or a string")
            conditions.append(Condition(name, op, (bound,)))
        elif op == "eq":
            conditions.append(Condition(name, "eq", (_scalar(name, value),)))
        else:
            raise InvalidFilter(
                f"filter {name!r} has unknown operator {op!r}; use eq, in, gt, gte, lt or lte"
            )
    return conditions


def _scalar(name: str, value: object) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilter(f"filter {name!r} value must be a finite number")
    if isinstance(value, str | int | float | bool):
        return value
    kind = "null" if value is None else type(value).__name__
    raise InvalidFilter(
        f"filter {name!r} compares with a {kind}; values must be strings, numbers or booleans"
    )


def _same_kind(left: object, right: Scalar) -> bool:
    if isinstance(right, bool) or isinstance(left, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    if isinstance(right, str):
        return isinstance(left, str)
    return isinstance(left, int | float)


def matches(metadata: Mapping[str, Any], conditions: tuple[Condition, ...]) -> bool:
    """True when `metadata` satisfies every condition (a missing field satisfies none)."""
    for condition in conditions:
        if condition.field not in metadata:
            return False
        value = metadata[condition.field]
        if condition.op in ("eq", "in"):
            if not any(_same_kind(value, v) and value == v for v in condition.values):
                return False
            continue
        bound = condition.values[0]
        if not _same_kind(value, bound):
            return False
        if not _compare(value, condition.op, bound):
            return False
    return True


def _compare(value: Any, op: str, bound: Any) -> bool:
    if op == "gt":
        return bool(value > bound)
    if op == "gte":
        return bool(value >= bound)
    if op == "lt":
        return bool(value < bound)
    return bool(value <= bound)


_SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def to_sqlite(conditions: tuple[Condition, ...], column: str = "metadata") -> tuple[str, list[Any]]:
    """A SQLite JSON1 boolean expression for `conditions` and its parameters ("1" when none)."""
    clauses: list[str] = []
    params: list[Any] = []
    for condition in conditions:
        # The field name is validated by `_FIELD` (no quotes), so the JSON path is safe to build.
        path = f'$."{condition.field}"'
        alternatives: list[str] = []
        for value in condition.values:
            op = "=" if condition.op == "in" else _SQL_OPS[condition.op]
            if isinstance(value, bool):
                alternatives.append(f"json_type({column}, ?) = ?")
                params += [path, "true" if value else "false"]
            elif isinstance(value, str):
                alternatives.append(
                    f"(json_type({column}, ?) = 'text' AND json_extract({column}, ?) {op} ?)"
                )
                params += [path, path, value]
            else:
                alternatives.append(
                    f"(json_type({column}, ?) IN ('integer', 'real') "
                    f"AND json_extract({column}, ?) {op} ?)"
                )
                params += [path, path, value]
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return (" AND ".join(clauses) or "1"), params


def to_postgres(
    conditions: tuple[Condition, ...], column: str = "metadata"
) -> tuple[str, list[Any]]:
    """A PostgreSQL jsonb boolean expression for `conditions` and its `%s` parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    for condition in conditions:
        alternatives: list[str] = []
        for value in condition.values:
            if condition.op in ("eq", "in"):
                # jsonb equality keeps types apart: "1" != 1 and true != 1.
                alternatives.append(f"{column} -> %s = %s::jsonb")
                params += [condition.field, orjson.dumps(value).decode()]
            elif isinstance(value, str):
                alternatives.append(
                    f"(jsonb_typeof({column} -> %s) = 'string' AND {column} ->> %s "
                    f'{_SQL_OPS[condition.op]} %s COLLATE "C")'
                )
                params += [condition.field, condition.field, value]
            else:
                alternatives.append(
                    f"(jsonb_typeof({column} -> %s) = 'number' AND ({column} ->> %s)::numeric "
                    f"{_SQL_OPS[condition.op]} %s)"
                )
                params += [condition.field, condition.field, value]
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return (" AND ".join(clauses) or "TRUE"), params
