"""`@cache.cached(...)`: memoise sync and async functions and methods in a `TieredCache`.

The decorator uses only the cache's public surface, spelled out as `CacheSurface` below (entries
by full key, the tiers, single flight); it knows no cache class.

The hot path (a hit with hashable positional arguments) is two dict lookups and a clock read: a
per-function `keymap` turns the argument tuple into the readable key `namespace:module.qualname:args`
built once, so no string is formatted and nothing is serialised on a hit. Other calls (keyword or
unhashable arguments) render the key each time (`render_args`). Misses go through single flight.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, ParamSpec, Protocol, TypeVar, cast

from companion.cache._errors import InvalidCacheKey, UnserializableValue
from companion.cache._keys import check_tags, check_tier, check_ttl, function_name, render_args
from companion.cache._single_flight import SingleFlight
from companion.cache._tier import MISSING, Tier

__all__ = ["CacheInfo", "CacheSurface", "Cached", "CachedDecorator", "cached"]

logger = logging.getLogger("companion.cache")
P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# Argument tuples remembered per function; past this the map starts over (it is only a shortcut).
_KEYMAP_MAX = 4096


class CacheInfo(NamedTuple):
    """Per-function counters: calls served from the cache, and calls that ran the function."""

    name: str
    hits: int
    misses: int


class Cached(Protocol[P, R_co]):
    """A cached function: call it as before, plus `invalidate`, `bypass` and `cache_info`."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Cached call."""
        ...

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Drop the entry these arguments map to, on every tier and node."""
        ...

    def bypass(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call the function without reading or writing the cache."""
        ...

    def cache_info(self) -> CacheInfo:
        """Hits and misses of this function."""
        ...


class CacheSurface(Protocol):
    """What the decorator uses of a cache (`TieredCache` is one): entries by full key.

    A full key is `prefix` + the function's name + its arguments; arguments are checked once, when
    the decorator is built, so none of these validates.
    """

    @property
    def prefix(self) -> str:
        """The start of every full key and stored tag."""
        ...

    @property
    def l1(self) -> Tier:
        """The hot tier: a hit is read from it directly."""
        ...

    @property
    def flights(self) -> SingleFlight:
        """Concurrent misses of one full key compute once."""
        ...

    def claim_name(self, name: str, fn: Callable[..., Any]) -> None:
        """Reserve `name` for `fn`; `InvalidCacheKey` if another function holds it."""
        ...

    def qualify_tags(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        """Checked tags as the cache stores them."""
        ...

    def lookup(self, full: str) -> object:
        """The value under `full` on any tier, or `MISSING`."""
        ...

    def store(
        self, full: str, value: object, ttl_s: float | None, tier: int, tags: Sequence[str]
    ) -> None:
        """Store on `tier` (1: both tiers, 2: L2 alone); `UnserializableValue` stores nothing."""
        ...

    def store_l1(self, full: str, value: object, ttl_s: float | None, tags: Sequence[str]) -> None:
        """Store in L1 alone, for a value L2 cannot hold."""
        ...

    def remove(self, full: str) -> bool:
        """Remove `full` from every tier and node; True if it was anywhere."""
        ...


class CachedDecorator(Protocol):
    """What `cache.cached(...)` returns."""

    def __call__(self, fn: Callable[P, R]) -> Cached[P, R]:
        """Wrap `fn`."""
        ...


def cached(
    cache: CacheSurface,
    *,
    ttl_s: float | None,
    tier: int,
    key: Callable[..., str] | None,
    tags: Sequence[str] | Callable[..., Sequence[str]],
    cache_none: bool,
    name: str | None,
) -> CachedDecorator:
    """Build the decorator (arguments are validated here, once)."""
    ttl_s = check_ttl(ttl_s)
    tier = check_tier(tier)
    if key is not None and not callable(key):
        raise InvalidCacheKey(f"key must be a callable returning str, got {key!r}")
    fixed_tags = () if callable(tags) else check_tags(tags)

    def decorate(fn: Callable[P, R]) -> Cached[P, R]:
        fname = name or function_name(fn)
        cache.claim_name(fname, fn)
        binding = _Binding(
            cache,
            fn,
            fname=fname,
            ttl_s=ttl_s,
            tier=tier,
            key=key,
            tags=tags,
            fixed_tags=fixed_tags,
            cache_none=cache_none,
        )
        wrapper = _async_wrapper(binding) if binding.is_async else _sync_wrapper(binding)
        functools.update_wrapper(wrapper, fn)
        if binding.is_method:
            return cast("Cached[P, R]", _CachedMethod(wrapper, binding))
        wrapper.invalidate = lambda *a, **kw: binding.invalidate(a, kw)  # type: ignore[attr-defined]
        wrapper.bypass = fn  # type: ignore[attr-defined]
        wrapper.cache_info = binding.info  # type: ignore[attr-defined]
        return cast("Cached[P, R]", wrapper)

    return decorate


class _Binding(Generic[R]):
    """Everything one cached function needs; the slow paths live here, the hot path in a closure."""

    def __init__(
        self,
        cache: CacheSurface,
        fn: Callable[..., R],
        *,
        fname: str,
        ttl_s: float | None,
        tier: int,
        key: Callable[..., str] | None,
        tags: Sequence[str] | Callable[..., Sequence[str]],
        fixed_tags: tuple[str, ...],
        cache_none: bool,
    ) -> None:
        self.cache, self.fn, self.name = cache, fn, fname
        self.ttl_s, self.tier, self.key_fn, self.cache_none = ttl_s, tier, key, cache_none
        self.tags_fn = tags if callable(tags) else None
        self.fixed_tags = cache.qualify_tags(fixed_tags)
        self.prefix = f"{cache.prefix}{fname}:"
        self.is_async = inspect.iscoroutinefunction(fn)
        params = list(inspect.signature(fn).parameters)
        # `self`/`cls` is left out of the key: the entry belongs to the method, not the instance.
        self.is_method = bool(params) and params[0] in ("self", "cls")
        self.keymap: dict[tuple[Any, ...], str] = {}
        self.fast_hits = self.slow_calls = self.misses = 0
        self.warned = False

    def info(self) -> CacheInfo:
        """Counters of this function."""
        return CacheInfo(self.name, self.fast_hits + self.slow_calls - self.misses, self.misses)

    def full_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The namespaced key of a call (`args` as the function receives them)."""
        if self.key_fn is not None:
            part = self.key_fn(*args, **kwargs)
            if type(part) is not str:
                raise InvalidCacheKey(f"key= of {self.name} returned {part!r}, not a str")
            return self.prefix + part
        return self.prefix + render_args(args[1:] if self.is_method else args, kwargs)

    def remember(self, args: tuple[Any, ...], key_args: tuple[Any, ...]) -> str:
        """Key of hashable positional arguments, kept in `keymap` for the next hit."""
        full = self.prefix + render_args(key_args, {})
        keymap = self.keymap
        if len(keymap) >= _KEYMAP_MAX:
            keymap.clear()
        keymap[key_args] = full
        return full

    def invalidate(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Remove the entry of this call everywhere."""
        return self.cache.remove(self.full_key(args, kwargs))

    def miss(self, full: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """L1 missed: try L2, else compute once across threads and store."""
        self.slow_calls += 1

        def compute() -> R:
            value = self.cache.lookup(full)
            if value is not MISSING:
                return cast(R, value)
            self.misses += 1
            result = self.fn(*args, **kwargs)
            self.store(full, result, args, kwargs)
            return result

        return self.cache.flights.run(full, compute)

    async def amiss(self, full: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`miss` for coroutine functions: compute once across tasks of this loop."""
        self.slow_calls += 1

        async def compute() -> Any:
            value = self.cache.lookup(full)
            if value is not MISSING:
                return value
            self.misses += 1
            result = await self.fn(*args, **kwargs)  # type: ignore[misc]
            self.store(full, result, args, kwargs)
            return result

        return await self.cache.flights.run_async(full, compute)

    def store(
        self, full: str, value: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Store a computed value (None only if `cache_none`)."""
        if value is None and not self.cache_none:
            return
        tags = self.fixed_tags
        if self.tags_fn is not None:
            tags = self.cache.qualify_tags(check_tags(self.tags_fn(*args, **kwargs)))
        try:
            self.cache.store(full, value, self.ttl_s, self.tier, tags)
        except UnserializableValue as exc:
            # The result is right; only sharing it through Redis is impossible. Keep it in L1.
            if not self.warned:
                self.warned = True
                logger.warning("%s: result kept in L1 only: %s", self.name, exc)
            if self.tier == 1:
                self.cache.store_l1(full, value, self.ttl_s, tags)


def _sync_wrapper(binding: _Binding[Any]) -> Callable[..., Any]:
    keymap, l1_get, miss, remember = (
        binding.keymap,
        binding.cache.l1.get,
        binding.miss,
        binding.remember,
    )
    full_key, skip = binding.full_key, 1 if binding.is_method else 0
    fast = binding.key_fn is None

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if fast and not kwargs:
            key_args = args[skip:] if skip else args
            try:
                full = keymap[key_args]
            except KeyError:
                full = remember(args, key_args)
            except TypeError:  # unhashable arguments: render them every time
                full = full_key(args, kwargs)
        else:
            full = full_key(args, kwargs)
        value = l1_get(full)
        if value is MISSING:
            return miss(full, args, kwargs)
        binding.fast_hits += 1
        return value

    return wrapper


def _async_wrapper(binding: _Binding[Any]) -> Callable[..., Any]:
    keymap, l1_get, amiss, remember = (
        binding.keymap,
        binding.cache.l1.get,
        binding.amiss,
        binding.remember,
    )
    full_key, skip = binding.full_key, 1 if binding.is_method else 0
    fast = binding.key_fn is None

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if fast and not kwargs:
            key_args = args[skip:] if skip else args
            try:
                full = keymap[key_args]
            except KeyError:
                full = remember(args, key_args)
            except TypeError:
                full = full_key(args, kwargs)
        else:
            full = full_key(args, kwargs)
        value = l1_get(full)
        if value is MISSING:
            return await amiss(full, args, kwargs)
        binding.fast_hits += 1
        return value

    return wrapper


class _CachedMethod:
    """Descriptor for cached methods, so `obj.method.invalidate(...)` and `.bypass` know `obj`."""

    def __init__(self, wrapper: Callable[..., Any], binding: _Binding[Any]) -> None:
        self._wrapper = wrapper
        self._binding = binding
        functools.update_wrapper(self, binding.fn)

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        return self if obj is None else _BoundCached(self._wrapper, self._binding, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrapper(*args, **kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Drop the entry of `method(self, *args)`; pass the instance first."""
        return self._binding.invalidate(args, kwargs)

    def bypass(self, *args: Any, **kwargs: Any) -> Any:
        """Call without the cache; pass the instance first."""
        return self._binding.fn(*args, **kwargs)

    def cache_info(self) -> CacheInfo:
        """Counters of this method (all instances together)."""
        return self._binding.info()


class _BoundCached:
    """A cached method bound to an instance."""

    __slots__ = ("_binding", "_obj", "_wrapper")

    def __init__(self, wrapper: Callable[..., Any], binding: _Binding[Any], obj: object) -> None:
        self._wrapper, self._binding, self._obj = wrapper, binding, obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrapper(self._obj, *args, **kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Drop the entry of this call."""
        return self._binding.invalidate((self._obj, *args), kwargs)

    def bypass(self, *args: Any, **kwargs: Any) -> Any:
        """Call without the cache."""
        return self._binding.fn(self._obj, *args, **kwargs)

    def cache_info(self) -> CacheInfo:
        """Counters of this method (all instances together)."""
        return self._binding.info()
