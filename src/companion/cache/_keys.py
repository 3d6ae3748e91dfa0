"""Validation of keys, TTLs and tiers, and the readable, stable text form of function arguments."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from companion.cache._errors import InvalidCacheKey, InvalidTier, InvalidTTL

__all__ = [
    "check_key",
    "check_namespace",
    "check_tags",
    "check_tier",
    "check_ttl",
    "function_name",
    "render_args",
]

# Longer argument texts are replaced by a digest: keys stay short in Redis and in `hot_keys`.
MAX_ARGS_CHARS = 160
_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]+")
_SCALARS = frozenset((str, int, float, bool, bytes, type(None)))


def check_key(key: object) -> str:
    """Return `key` if it is a non-empty str, else raise `InvalidCacheKey`."""
    if type(key) is not str or not key:
        raise InvalidCacheKey(
            f"cache key must be a non-empty str, got {type(key).__name__} {key!r}"
        )
    return key


def check_namespace(namespace: object) -> str:
    """A namespace is letters, digits, `_`, `.`, `-`: it can never contain glob syntax or `:`."""
    if type(namespace) is not str or not _NAMESPACE.fullmatch(namespace):
        raise InvalidCacheKey(
            f"namespace must match [A-Za-z0-9_.-]+, got {namespace!r}",
        )
    return namespace


def check_ttl(ttl_s: object) -> float | None:
    """None (the tier's default) or a finite number of seconds above zero."""
    if ttl_s is None:
        return None
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float):
        raise InvalidTTL(f"ttl_s must be a number of seconds or None, got {ttl_s!r}")
    if not math.isfinite(ttl_s) or ttl_s <= 0:
        raise InvalidTTL(f"ttl_s must be a finite number of seconds > 0, got {ttl_s!r}")
    return float(ttl_s)


def check_tier(tier: object) -> int:
    """1 (L1, written through to L2) or 2 (L2 only)."""
    if type(tier) is not int or tier not in (1, 2):
        raise InvalidTier(f"tier must be 1 (L1 and L2) or 2 (L2 only), got {tier!r}")
    return tier


def check_tags(tags: object) -> tuple[str, ...]:
    """A sequence of non-empty str (a bare str is refused: it would be split into letters)."""
    if isinstance(tags, str) or not isinstance(tags, Sequence | frozenset | set):
        raise InvalidCacheKey(f"tags must be a sequence of str, got {tags!r}")
    for tag in tags:
        check_key(tag)
    return tuple(tags)


def function_name(fn: Callable[..., Any]) -> str:
    """`module.qualname`: two functions of the same name in two modules never share entries."""
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def render_args(args: Sequence[object], kwargs: Mapping[str, object]) -> str:
    """Readable text of the arguments, equal for equal arguments in every process.

    Scalars appear as Python literals (`42,'x'`), so `42` and `'42'` differ; containers are
    rendered recursively with sets and dicts sorted; keyword arguments follow, sorted by name.
    """
    parts = [repr(arg) if type(arg) in _SCALARS else _render(arg) for arg in args]
    if kwargs:
        parts.extend(f"{name}={_render(kwargs[name])}" for name in sorted(kwargs))
    text = ",".join(parts)
    if len(text) > MAX_ARGS_CHARS:
        return "#" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return text


def _render(value: object) -> str:
    kind = type(value)
    if kind in _SCALARS:
        return repr(value)
    if kind is tuple or kind is list:
        inner = ",".join(_render(item) for item in value)  # type: ignore[attr-defined]
        if kind is list:
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"  # type: ignore[arg-type]
    if kind is set or kind is frozenset:
        return "{" + ",".join(sorted(_render(item) for item in value)) + "}"  # type: ignore[attr-defined]
    if kind is dict:
        items = value.items()  # type: ignore[attr-defined]
        return "{" + ",".join(sorted(f"{_render(k)}:{_render(v)}" for k, v in items)) + "}"
    if kind.__repr__ is object.__repr__:
        # The default repr holds the object's address: equal objects would get different keys,
        # and a dead object's address can be reused by a new one (a wrong hit).
        raise InvalidCacheKey(
            f"cannot build a cache key from a {kind.__qualname__} argument: it has no stable "
            "repr; pass key=... to the decorator or give the class a __repr__"
        )
    return repr(value)
