"""Metadata filters: field conditions on top-level metadata fields, composed with `and`/`or`/`not`.

    filter := {key: spec, ...}         every key must hold
    key    := a field name | "and" | "or" | "not"
    spec   := scalar                   equality
            | {operator: operand, ...} every operator must hold
    "and", "or": [filter, ...]         a non-empty list of non-empty filters
    "not": filter

Operators: `eq`, `ne`, `in`, `nin`, `gt`, `gte`, `lt`, `lte`, `exists`, `contains`
(docs/knowledge.md has the user's table). A filter is parsed once into a tree of `Condition`s, so a
bad or oversized one is rejected before anything runs, then either evaluated in Python (`matches`,
the reference) or rendered as SQL for SQLite's JSON1 or PostgreSQL's jsonb. `ne`, `nin` and
`exists: false` parse to `Not` of the positive test, and every SQL leaf is a `CASE` or `COALESCE`
that is never NULL, so negation means the same in all three (SQL's NULL would make `NOT` drop
documents that lack the field). A missing field and a JSON null are the same to every operator.
"""

# ruff: noqa: S608 -- only the caller's constant column name, JSON1/jsonb functions and `?`/`%s`
# placeholders are interpolated; every value and field name is a parameter.

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias

import orjson

from companion.knowledge._errors import InvalidFilter

__all__ = [
    "MAX_FILTER_CONDITIONS",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_VALUES",
    "MAX_IN_VALUES",
    "AllOf",
    "AnyOf",
    "Condition",
    "FieldTest",
    "Not",
    "matches",
    "parse_filter",
    "to_postgres",
    "to_sqlite",
]

Scalar = str | int | float | bool
Operator = Literal["eq", "in", "gt", "gte", "lt", "lte", "exists", "contains"]
_FIELD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
_RANGE_OPS: dict[object, Operator] = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}
_OPERATORS = "eq, ne, in, nin, gt, gte, lt, lte, exists or contains"
MAX_IN_VALUES = 1000
MAX_FILTER_DEPTH = 8  # nested `and`/`or`/`not`
MAX_FILTER_CONDITIONS = 100  # field tests in one filter
MAX_FILTER_VALUES = 10_000  # values in all its `in`/`nin` lists together
_INT64 = 2**63
# Only ASCII letters fold, the same in all three: SQLite's `lower()` and PostgreSQL's under
# COLLATE "C" fold nothing else (Python's `str.lower` would also fold "É").
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass(frozen=True, slots=True)
class FieldTest:
    """One test on one top-level metadata field; `values` has one item except for `in` (and
    none for `exists`)."""

    field: str
    op: Operator
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every part holds."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one part holds."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The part does not hold."""

    part: Condition


Condition: TypeAlias = FieldTest | AllOf | AnyOf | Not


@dataclass(slots=True)
class _Budget:
    conditions: int = 0
    values: int = 0

    def spend(self, values: int) -> None:
        self.conditions += 1
        self.values += values
        if self.conditions > MAX_FILTER_CONDITIONS:
            raise InvalidFilter(
                f"filter has more than {MAX_FILTER_CONDITIONS} conditions (the limit)"
            )
        if self.values > MAX_FILTER_VALUES:
            raise InvalidFilter(
                f"filter lists more than {MAX_FILTER_VALUES} values in all (the limit)"
            )


def parse_filter(raw: object) -> tuple[Condition, ...]:
    """Validate `raw` and return its conditions (all must hold), or raise `InvalidFilter`."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise InvalidFilter("filter must be a JSON object of metadata field -> condition")
    return tuple(_parse_object(raw, 0, _Budget()))


def _parse_object(raw: Mapping[Any, Any], depth: int, budget: _Budget) -> list[Condition]:
    conditions: list[Condition] = []
    for key, spec in raw.items():
        if key in ("and", "or", "not"):
            if depth + 1 > MAX_FILTER_DEPTH:
                raise InvalidFilter(
                    f"filter nests 'and', 'or' and 'not' more than {MAX_FILTER_DEPTH} deep "
                    "(the limit)"
                )
            conditions.append(_parse_group(key, spec, depth + 1, budget))
        elif not isinstance(key, str) or not _FIELD.fullmatch(key):
            raise InvalidFilter(f"filter field {key!r} is not a valid metadata field name")
        elif isinstance(spec, Mapping):
            conditions.extend(_parse_operators(key, spec, budget))
        else:
            conditions.append(_test(key, "eq", (_scalar(key, spec),), budget))
    return conditions


def _parse_group(key: str, spec: object, depth: int, budget: _Budget) -> Condition:
    if key == "not":
        if not isinstance(spec, Mapping) or not spec:
            raise InvalidFilter("'not' takes a non-empty filter object")
        return Not(_all(_parse_object(spec, depth, budget)))
    if not isinstance(spec, list) or not spec:
        raise InvalidFilter(f"{key!r} takes a non-empty list of filter objects")
    branches: list[Condition] = []
    for item in spec:
        if not isinstance(item, Mapping) or not item:
            raise InvalidFilter(f"each item of {key!r} must be a non-empty filter object")
        branches.append(_all(_parse_object(item, depth, budget)))
    return AllOf(tuple(branches)) if key == "and" else AnyOf(tuple(branches))


def _all(conditions: list[Condition]) -> Condition:
    return conditions[0] if len(conditions) == 1 else AllOf(tuple(conditions))


def _parse_operators(name: str, spec: Mapping[Any, Any], budget: _Budget) -> list[Condition]:
    if not spec:
        raise InvalidFilter(f"filter on {name!r} is an empty object")
    return [_parse_operator(name, op, value, budget) for op, value in spec.items()]


def _parse_operator(name: str, op: object, value: object, budget: _Budget) -> Condition:
    if op in ("eq", "ne"):
        test = _test(name, "eq", (_scalar(name, value),), budget)
        return test if op == "eq" else Not(test)
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
            raise InvalidFilter(
                f"filter {name!r} {op!r} needs a list of 1 to {MAX_IN_VALUES} values"
            )
        test = _test(name, "in", tuple(_scalar(name, v) for v in value), budget)
        return test if op == "in" else Not(test)
    if (range_op := _RANGE_OPS.get(op)) is not None:
        bound = _scalar(name, value)
        if isinstance(bound, bool):
            raise InvalidFilter(f"filter {name!r} {op!r} needs a number or a string")
        return _test(name, range_op, (bound,), budget)
    if op == "exists":
        if not isinstance(value, bool):
            raise InvalidFilter(f"filter {name!r} 'exists' takes true or false")
        test = _test(name, "exists", (), budget)
        return test if value else Not(test)
    if op == "contains":
        if not isinstance(value, str) or not value:
            raise InvalidFilter(f"filter {name!r} 'contains' needs a non-empty string")
        return _test(name, "contains", (_scalar(name, value),), budget)
    raise InvalidFilter(f"filter {name!r} has unknown operator {op!r}; use {_OPERATORS}")


def _test(name: str, op: Operator, values: tuple[Scalar, ...], budget: _Budget) -> FieldTest:
    budget.spend(len(values) if op == "in" else 0)
    return FieldTest(name, op, values)


def _scalar(name: str, value: object) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilter(f"filter {name!r} value must be a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        raise InvalidFilter(f"filter {name!r} value {value} is outside the 64-bit integer range")
    if isinstance(value, str) and ("\x00" in value or not _is_utf8(value)):
        raise InvalidFilter(f"filter {name!r} value must be UTF-8 text without NUL characters")
    if isinstance(value, str | int | float | bool):
        return value
    kind = "null" if value is None else type(value).__name__
    raise InvalidFilter(
        f"filter {name!r} compares with a {kind}; values must be strings, numbers or booleans"
    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. "\ud800" in JSON
        return False
    return True


# -- Python: the reference --------------------------------------------------------------------


def matches(metadata: Mapping[str, Any], conditions: tuple[Condition, ...]) -> bool:
    """True when `metadata` satisfies every condition."""
    return all(_holds(metadata, condition) for condition in conditions)


def _holds(metadata: Mapping[str, Any], condition: Condition) -> bool:
    match condition:
        case AllOf(parts):
            return all(_holds(metadata, part) for part in parts)
        case AnyOf(parts):
            return any(_holds(metadata, part) for part in parts)
        case Not(part):
            return not _holds(metadata, part)
        case FieldTest(field, op, values):
            # A missing field reads as None, as a JSON null does: both fail every positive test.
            return _test_holds(metadata.get(field), op, values)


def _test_holds(value: Any, op: Operator, values: tuple[Scalar, ...]) -> bool:
    if op == "exists":
        return value is not None
    if op == "contains":
        needle = _fold(str(values[0]))
        if isinstance(value, str):
            return needle in _fold(value)
        return isinstance(value, list) and any(
            isinstance(item, str) and _fold(item) == needle for item in value
        )
    if op in ("eq", "in"):
        return any(_same_kind(value, v) and value == v for v in values)
    bound = values[0]
    return _same_kind(value, bound) and _compare(value, op, bound)


def _fold(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _same_kind(left: object, right: Scalar) -> bool:
    if isinstance(right, bool) or isinstance(left, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    if isinstance(right, str):
        return isinstance(left, str)
    return isinstance(left, int | float)


def _compare(value: Any, op: str, bound: Any) -> bool:
    if op == "gt":
        return bool(value > bound)
    if op == "gte":
        return bool(value >= bound)
    if op == "lt":
        return bool(value < bound)
    return bool(value <= bound)


_SQL_OPS = {"eq": "=", "in": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


# -- SQLite JSON1 -----------------------------------------------------------------------------


def to_sqlite(conditions: tuple[Condition, ...], column: str = "metadata") -> tuple[str, list[Any]]:
    """A SQLite JSON1 boolean expression for `conditions` and its parameters ("1" when none)."""
    params: list[Any] = []
    clauses = [
        _compose(condition, lambda test: _sqlite_test(test, column, params))
        for condition in conditions
    ]
    return (" AND ".join(clauses) or "1"), params


def _compose(condition: Condition, field_test: Callable[[FieldTest], str]) -> str:
    """SQL of `condition`'s `and`/`or`/`not` tree, with each field test written by `field_test`
    (the part where the two dialects differ)."""
    match condition:
        case AllOf(parts):
            return "(" + " AND ".join(_compose(part, field_test) for part in parts) + ")"
        case AnyOf(parts):
            return "(" + " OR ".join(_compose(part, field_test) for part in parts) + ")"
        case Not(part):
            return f"(NOT {_compose(part, field_test)})"
        case FieldTest():
            return field_test(condition)


def _sqlite_test(test: FieldTest, column: str, params: list[Any]) -> str:
    # The field name is validated by `_FIELD` (no quotes), so its JSON path is safe to build; it
    # still goes as a parameter. Each test is a CASE on `json_type`, which is NULL for a missing
    # field and matches no WHEN, so a test is 0 or 1, never NULL. JSON booleans are only ever told
    # by their type: `json_extract` reads them as 1 and 0.
    path = f'$."{test.field}"'
    params.append(path)
    if test.op == "exists":
        return f"(IFNULL(json_type({column}, ?), 'null') <> 'null')"
    value = f"json_extract({column}, ?)"
    if test.op == "contains":
        needle = _fold(str(test.values[0]))
        params += [path, needle, path, needle]
        return (
            f"(CASE json_type({column}, ?) WHEN 'text' THEN instr(lower({value}), ?) > 0 "
            f"WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each({column}, ?) AS e "
            "WHERE e.type = 'text' AND lower(e.value) = ?) ELSE 0 END)"
        )
    flags = sorted({v for v in test.values if isinstance(v, bool)})
    texts = [v for v in test.values if isinstance(v, str)]
    numbers = [v for v in test.values if not isinstance(v, str | bool)]
    branches = [f"WHEN '{'true' if flag else 'false'}' THEN 1" for flag in flags]
    param: Any
    for kinds, values in ((("text",), texts), (("integer", "real"), numbers)):
        if not values:
            continue
        if len(values) > 1:  # `in`: one parameter, however long the list
            compare, param = "IN (SELECT value FROM json_each(?))", orjson.dumps(values).decode()
        else:
            compare, param = f"{_SQL_OPS[test.op]} ?", values[0]
        for kind in kinds:
            branches.append(f"WHEN '{kind}' THEN {value} {compare}")
            params += [path, param]
    return f"(CASE json_type({column}, ?) {' '.join(branches)} ELSE 0 END)"


# -- PostgreSQL jsonb -------------------------------------------------------------------------


def to_postgres(
    conditions: tuple[Condition, ...], column: str = "metadata"
) -> tuple[str, list[Any]]:
    """A PostgreSQL jsonb boolean expression for `conditions` and its `%s` parameters."""
    params: list[Any] = []
    clauses = [
        _compose(condition, lambda test: _postgres_test(test, column, params))
        for condition in conditions
    ]
    return (" AND ".join(clauses) or "TRUE"), params


def _postgres_test(test: FieldTest, column: str, params: list[Any]) -> str:
    # Every test is a CASE on the field's type or a COALESCE, never NULL; the CASE also orders the
    # evaluation, so `::numeric` only ever sees a number.
    field = test.field
    kind = f"jsonb_typeof({column} -> %s)"
    if test.op == "exists":
        params.append(field)
        return f"(COALESCE({kind}, 'null') <> 'null')"
    if test.op == "eq":
        # jsonb equality keeps types apart ("1" != 1, true != 1) and compares numbers exactly.
        params += [field, orjson.dumps(test.values[0]).decode()]
        return f"COALESCE({column} -> %s = %s::jsonb, FALSE)"
    if test.op == "in":
        params += [field, [orjson.dumps(v).decode() for v in test.values]]
        return f"COALESCE({column} -> %s = ANY(%s::jsonb[]), FALSE)"
    if test.op == "contains":
        needle = _fold(str(test.values[0]))
        params += [field, field, needle, field, needle]
        return (
            f"(CASE {kind} "
            f"WHEN 'string' THEN strpos(lower(({column} ->> %s) COLLATE \"C\"), %s) > 0 "
            f"WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({column} -> %s) "
            "AS e(v) WHERE jsonb_typeof(e.v) = 'string' "
            "AND lower((e.v #>> '{}') COLLATE \"C\") = %s) ELSE FALSE END)"
        )
    bound = test.values[0]
    op = _SQL_OPS[test.op]
    params += [field, field]
    if isinstance(bound, str):
        # COLLATE "C": code point order, as Python and SQLite compare strings.
        params.append(bound)
        return (
            f"(CASE {kind} WHEN 'string' THEN ({column} ->> %s) COLLATE \"C\" {op} %s "
            "ELSE FALSE END)"
        )
    # Exact numeric on both sides: a float parameter would round the stored number to a double
    # (2**53 + 1 > 2.0**53 would be false). A float bound goes as its shortest decimal, which
    # orders against stored numbers as the float itself does.
    params.append(Decimal(repr(bound)) if isinstance(bound, float) else bound)
    return (
        f"(CASE {kind} WHEN 'number' THEN ({column} ->> %s)::numeric {op} %s::numeric "
        "ELSE FALSE END)"
    )
