"""Deep mode: a sampled call tree of one block or request, via pyinstrument.

pyinstrument samples the stack every `interval_s` (1 ms by default), so the block runs at nearly
full speed and the tree shows where the time went, not only which profiled name was slow. One trace
at a time per thread; in asyncio code it follows the awaiting task (`async_mode="enabled"`).
"""

from __future__ import annotations

from types import TracebackType

from pyinstrument import Profiler as _Sampler
from pyinstrument.renderers import SpeedscopeRenderer
from pyinstrument.session import Session

from companion.errors import InvalidInput

__all__ = ["Trace"]


class Trace:
    """`with Trace() as t: ...` then `t.to_text()`, `t.to_html()` or `t.to_speedscope()`."""

    def __init__(self, interval_s: float = 0.001) -> None:
        if not 0 < interval_s <= 1:
            raise InvalidInput(f"interval_s must be in (0, 1], got {interval_s!r}")
        self._sampler = _Sampler(interval=interval_s, async_mode="enabled")
        self._session: Session | None = None

    def __enter__(self) -> Trace:
        self._sampler.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._session = self._sampler.stop()

    async def __aenter__(self) -> Trace:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @property
    def duration_s(self) -> float:
        """Wall time of the traced block."""
        return self._finished().duration

    def to_text(self, *, show_all: bool = False) -> str:
        """The call tree as plain text (no colour codes)."""
        return self._sampler.output_text(unicode=True, color=False, show_all=show_all)

    def to_html(self) -> str:
        """A self-contained interactive HTML page."""
        self._finished()
        return self._sampler.output_html()

    def to_speedscope(self) -> str:
        """The profile as speedscope JSON (open at https://www.speedscope.app)."""
        self._finished()
        return self._sampler.output(renderer=SpeedscopeRenderer())

    def _finished(self) -> Session:
        if self._session is None:
            raise InvalidInput("the trace has not finished: read it after the `with` block")
        return self._session
