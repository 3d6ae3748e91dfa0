"""`KnowledgeBase.close()` returns in bounded time, whatever a library does with cancellation.

The hang this guards against: the embedding queue's task was cancelled while a library call below
it (the PostgreSQL pool) swallowed the `CancelledError` and returned; the task went on to park at
its next `await self._wake.wait()` and `close()` awaited it forever.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from companion.knowledge import KnowledgeBase
from tests.knowledge.conftest import _make_store
from tests.knowledge.test_embedding_queue import FakeEmbedder

# Far above the default bound of close (5 s) and what a close that works needs (it returns at
# once), so a failing close fails the test instead of hanging it; a passing run never waits for it.
HANG_S = 20.0


class SwallowingLibrary:
    """Stands in for a library call that catches `CancelledError` instead of letting it through.

    `stubborn=False` swallows it once and returns as if nothing happened (the PostgreSQL pool's
    behaviour); `stubborn=True` swallows every cancellation until `release` is set.
    """

    def __init__(self, *, stubborn: bool) -> None:
        self.stubborn = stubborn
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def chunks_to_embed(self, *_: object, **__: object) -> list[tuple[int, str]]:
        self.entered.set()
        while True:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                if self.stubborn:
                    continue
            return []


async def _queue_inside(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    library: SwallowingLibrary,
    **options: float,
) -> KnowledgeBase:
    """A started knowledge base whose embedding queue is inside `library` right now."""
    store = await _make_store(kind, tmp_path, request)
    kb = KnowledgeBase(store, FakeEmbedder(), **options)
    await kb.start()
    await kb.create_collection("t", "c")
    monkeypatch.setattr(store, "chunks_to_embed", library.chunks_to_embed)
    assert kb.embedding_queue is not None
    kb.embedding_queue.notify("t", "c")
    await library.entered.wait()
    return kb


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_close_returns_when_the_queue_task_swallows_its_cancellation(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = SwallowingLibrary(stubborn=False)
    kb = await _queue_inside(kind, tmp_path, request, monkeypatch, library)
    queue = kb.embedding_queue
    assert queue is not None
    task = queue._task
    assert task is not None
    closing = asyncio.ensure_future(kb.close())
    done, _ = await asyncio.wait({closing}, timeout=HANG_S)
    assert closing in done, "close() hung on a queue task that swallowed its cancellation"
    closing.result()
    assert task.done()  # it stopped at its next turn: not abandoned, really stopped


async def test_close_gives_up_on_a_task_that_never_stops_and_says_so(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    library = SwallowingLibrary(stubborn=True)
    # The bound is the thing under test, and it is real event-loop time: kept tiny.
    kb = await _queue_inside(
        "sqlite", tmp_path, request, monkeypatch, library, close_timeout_s=0.05
    )
    queue = kb.embedding_queue
    assert queue is not None
    task = queue._task
    assert task is not None
    with caplog.at_level(logging.ERROR, logger="companion.knowledge"):
        closing = asyncio.ensure_future(kb.close())
        done, _ = await asyncio.wait({closing}, timeout=HANG_S)
    assert closing in done, "close() waited past its bound"
    closing.result()
    assert "the embedding queue did not stop within 0.1 s" in caplog.text
    assert not task.done()  # left behind, as logged
    with pytest.raises(RuntimeError, match="not started"):
        await kb.store.health()  # the store was still closed
    library.release.set()  # let the stuck "library" return so the task ends with the test
    await asyncio.wait({task}, timeout=HANG_S)
    assert task.done()
