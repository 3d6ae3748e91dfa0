from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from companion.cache import UnserializableValue
from companion.cache._serialize import dumps, loads

VALUES = [
    None,
    True,
    0,
    -(2**70),
    1.5,
    "text",
    b"\x00\xff",
    [1, "a", None],
    (1, (2, 3)),
    {1, 2},
    frozenset({"a"}),
    {"a": 1, "b": [1, 2]},
    {1: "int key", (1, 2): "tuple key"},
    {"__t": "not a marker"},
    dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
    dt.date(2024, 5, 6),
    dt.time(7, 8, 9),
    dt.timedelta(days=1, seconds=2, microseconds=3),
    uuid.UUID(int=7),
    Decimal("1.10"),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip_keeps_type_and_value(value: object) -> None:
    decoded, tags = loads(dumps(value, ("t1",)))
    assert decoded == value
    assert type(decoded) is type(value)
    assert tags == ("t1",)


def test_unsupported_types_raise_a_clear_error() -> None:
    class Custom:
        pass

    with pytest.raises(UnserializableValue, match=r"cannot store a .*Custom"):
        dumps(Custom())
    with pytest.raises(UnserializableValue):
        dumps([1, object()])


def test_foreign_data_is_rejected_not_executed() -> None:
    for data in (b"[1]", b'{"x": 1}', b'{"v": {"__t": "pickle", "v": "..."}}', b"\x80\x04"):
        with pytest.raises(ValueError):  # noqa: PT011 - any ValueError (orjson's is one)
            loads(data)


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_like)
def test_round_trip_property(value: object) -> None:
    assert loads(dumps(value))[0] == value
