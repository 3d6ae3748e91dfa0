"""The safe wire format of the Redis tier: JSON (orjson) with a small typed envelope.

JSON keeps str, int, float, bool, None, list and str-keyed dict. Other supported types travel as
`{"__t": type, "v": data}`: tuple, set, frozenset, bytes, dict with other keys (or a `"__t"` key),
datetime, date, time, timedelta, UUID, Decimal, ints beyond 64 bits, inf and nan. Anything else raises
`UnserializableValue`; nothing is ever unpickled, so a value another node wrote cannot run code here.
Subclasses are refused rather than silently narrowed to their base type.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from companion.cache._errors import UnserializableValue

__all__ = ["dumps", "loads"]

_TAG = "__t"
_INT64 = 2**63


def dumps(value: object, tags: tuple[str, ...] = ()) -> bytes:
    """Encode a value (and the tags it was stored with) as bytes."""
    record: dict[str, Any] = {"v": _encode(value)}
    if tags:
        record["t"] = list(tags)
    return orjson.dumps(record)


def loads(data: bytes) -> tuple[object, tuple[str, ...]]:
    """Decode what `dumps` wrote: (value, tags). Raises ValueError on anything else."""
    record = orjson.loads(data)
    if type(record) is not dict or "v" not in record:
        raise ValueError("not a cache record")
    return _decode(record["v"]), tuple(record.get("t", ()))


def _encode(value: object) -> Any:
    kind = type(value)
    if kind is str or kind is bool or value is None or (kind in _NUMBERS and _plain(value)):  # type: ignore[arg-type]
        return value
    if kind is list:
        return [_encode(item) for item in value]  # type: ignore[attr-defined]
    if kind is dict:
        items: dict[Any, Any] = value  # type: ignore[assignment]
        if _TAG not in items and all(type(k) is str for k in items):
            return {k: _encode(v) for k, v in items.items()}
        return {_TAG: "dict", "v": [[_encode(k), _encode(v)] for k, v in items.items()]}
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        raise UnserializableValue(
            f"the Redis tier cannot store a {kind.__module__}.{kind.__qualname__}: supported are "
            "JSON types, tuple, set, frozenset, bytes, datetime, date, time, timedelta, UUID, "
            "Decimal (containers of these included)"
        )
    return {_TAG: encoder[0], "v": encoder[1](value)}


_NUMBERS = (int, float)


def _plain(number: float) -> bool:
    # JSON has no inf/nan (orjson would write null) and orjson stops at 64-bit ints.
    return -_INT64 <= number < _INT64 and math.isfinite(number)


_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    int: ("int", repr),
    float: ("float", repr),
    tuple: ("tuple", lambda v: [_encode(item) for item in v]),
    set: ("set", lambda v: [_encode(item) for item in v]),
    frozenset: ("frozenset", lambda v: [_encode(item) for item in v]),
    bytes: ("bytes", lambda v: base64.b64encode(v).decode("ascii")),
    dt.datetime: ("datetime", lambda v: v.isoformat()),
    dt.date: ("date", lambda v: v.isoformat()),
    dt.time: ("time", lambda v: v.isoformat()),
    dt.timedelta: ("timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    uuid.UUID: ("uuid", str),
    Decimal: ("decimal", str),
}

_DECODERS: dict[str, Callable[[Any], object]] = {
    "int": int,
    "float": float,
    "dict": lambda v: {_decode(k): _decode(item) for k, item in v},
    "tuple": lambda v: tuple(_decode(item) for item in v),
    "set": lambda v: {_decode(item) for item in v},
    "frozenset": lambda v: frozenset(_decode(item) for item in v),
    "bytes": base64.b64decode,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "uuid": uuid.UUID,
    "decimal": Decimal,
}


def _decode(data: Any) -> object:
    kind = type(data)
    if kind is list:
        return [_decode(item) for item in data]
    if kind is dict:
        tag = data.get(_TAG)
        if tag is None:
            return {k: _decode(v) for k, v in data.items()}
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise ValueError(f"unknown cache value type {tag!r}")
        return decoder(data["v"])
    return data
