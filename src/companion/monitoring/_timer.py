"""`Timer`: time a block or a function (sync or async) into a histogram series, in seconds."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from companion.monitoring._metrics import HistogramChild
from companion.monitoring._window import Clock

__all__ = ["Timer"]

P = ParamSpec("P")
R = TypeVar("R")


class Timer:
    """Context manager and decorator; the duration is recorded even when the body raises.

    As a decorator it is reentrant and thread-safe. As a context manager one `Timer` times one block
    at a time: take a fresh one (`monitor.timer(...)`) per `with`.
    """

    __slots__ = ("_child", "_clock", "_start")

    def __init__(self, child: HistogramChild, clock: Clock) -> None:
        self._child = child
        self._clock = clock
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = self._clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._child.add(self._clock() - self._start)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate `fn` so every call is timed."""
        child, clock = self._child, self._clock
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = clock()
                try:
                    return await afn(*args, **kwargs)
                finally:
                    child.add(clock() - start)

            return cast(Callable[P, R], timed_async)

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                child.add(clock() - start)

        return timed
