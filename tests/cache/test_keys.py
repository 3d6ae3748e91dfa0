from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

import pytest

from companion.cache import InvalidCacheKey, InvalidTier, InvalidTTL
from companion.cache._keys import (
    MAX_ARGS_CHARS,
    check_key,
    check_namespace,
    check_tags,
    check_tier,
    check_ttl,
    render_args,
)
from companion.errors import InvalidInput


class Color(enum.Enum):
    RED = 1


@dataclass(frozen=True)
class Point:
    x: int
    y: int


class Opaque:
    pass


def test_scalars_render_as_literals_so_types_do_not_collide() -> None:
    assert render_args((42, "x"), {}) == "42,'x'"
    assert render_args((42,), {}) != render_args(("42",), {})
    assert render_args((None, True, 1.5, b"a"), {}) == "None,True,1.5,b'a'"


def test_containers_render_stably() -> None:
    assert render_args(({"b": 1, "a": 2},), {}) == render_args(({"a": 2, "b": 1},), {})
    assert render_args(({3, 1, 2},), {}) == "{1,2,3}"
    assert render_args(((1,), [1]), {}) == "(1,),[1]"


def test_keyword_arguments_sorted_by_name() -> None:
    assert render_args((1,), {"z": 1, "a": "q"}) == "1,a='q',z=1"


def test_objects_with_a_repr_are_accepted() -> None:
    assert render_args((Color.RED, Point(1, 2), dt.date(2024, 1, 2)), {}) == (
        "<Color.RED: 1>,Point(x=1, y=2),datetime.date(2024, 1, 2)"
    )


def test_objects_with_the_default_repr_are_refused() -> None:
    with pytest.raises(InvalidCacheKey, match="no stable repr"):
        render_args((Opaque(),), {})


def test_long_arguments_are_hashed() -> None:
    text = render_args(("x" * 500,), {})
    assert text.startswith("#")
    assert len(text) < MAX_ARGS_CHARS
    assert text == render_args(("x" * 500,), {})
    assert text != render_args(("x" * 501,), {})


@pytest.mark.parametrize("key", [42, b"k", None, "", ("a",)])
def test_bad_keys(key: object) -> None:
    with pytest.raises(InvalidCacheKey, match="non-empty str"):
        check_key(key)


@pytest.mark.parametrize("ttl", [-1, 0, float("inf"), float("nan"), "5", True])
def test_bad_ttls(ttl: object) -> None:
    with pytest.raises(InvalidTTL, match="ttl_s"):
        check_ttl(ttl)


def test_good_ttls() -> None:
    assert check_ttl(None) is None
    assert check_ttl(5) == 5.0
    assert check_ttl(0.25) == 0.25


@pytest.mark.parametrize("tier", [0, 3, "1", 1.0, True])
def test_bad_tiers(tier: object) -> None:
    with pytest.raises(InvalidTier, match="tier must be 1"):
        check_tier(tier)


def test_errors_are_invalid_input() -> None:
    for error in (InvalidCacheKey, InvalidTTL, InvalidTier):
        assert issubclass(error, InvalidInput)
        assert error.status == 400


def test_tags_and_namespace() -> None:
    assert check_tags(["a", "b"]) == ("a", "b")
    with pytest.raises(InvalidCacheKey):
        check_tags("user:1")
    with pytest.raises(InvalidCacheKey):
        check_tags([1])
    assert check_namespace("tenant-42.prod") == "tenant-42.prod"
    for bad in ("", "a:b", "a*", 42):
        with pytest.raises(InvalidCacheKey):
            check_namespace(bad)
