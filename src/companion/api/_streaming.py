"""Server-Sent Events for runs and session cells: their output as it comes, then their result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.types import Scope

from companion.api._context import log_ids, request_id_of, trace_id_of
from companion.api._problems import problem_body
from companion.errors import CompanionError
from companion.execution import OutputEvent

__all__ = ["EVENT_STREAM", "streamed_run", "wants_events"]

_log = logging.getLogger("companion.api")
_MERGED_CHARS = 65536
# Proxies must pass each event on at once.
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# The OpenAPI `responses` entry of a route that may answer with events.
EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {"schema": {"type": "string", "description": "Server-Sent Events"}}
        }
    }
}

OutputSink = Callable[[OutputEvent], None]


def wants_events(http: Request) -> bool:
    """True when the client asked for Server-Sent Events."""
    return "text/event-stream" in http.headers.get("accept", "")


def streamed_run(
    http: Request,
    start: Callable[[OutputSink], Awaitable[BaseModel]],
    release: Callable[[], None],
) -> StreamingResponse:
    """Start `start(on_output)` now and answer with its events; `release` is called when the
    run ends, however it ends (a client reading slowly then holds only the bounded output
    waiting for it, not the caller's slot). A client that goes away cancels the run."""
    queue: asyncio.Queue[OutputEvent | None] = asyncio.Queue()

    async def held() -> BaseModel:
        try:
            return await start(queue.put_nowait)
        finally:
            release()

    run = asyncio.create_task(held())
    run.add_done_callback(lambda _: queue.put_nowait(None))
    return StreamingResponse(
        _rendered(_events(run, queue), http.scope),
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
    )


async def _events(
    run: asyncio.Task[BaseModel], queue: asyncio.Queue[OutputEvent | None]
) -> AsyncIterator[tuple[str, str]]:
    """(event, JSON data) pairs: `stdout`/`stderr` `{"text"}` pieces and `result` pieces (a
    rich result's representation) as the run produces them, in order, then `done` with the
    whole result. A client that goes away cancels this, which stops the run.

    Pieces of one stream waiting in the queue go out as one event of up to 64 KiB: a run
    printing a line at a time costs the event loop one event per read, not one per line.
    """
    try:
        event = await queue.get()
        while event is not None:
            if event.kind == "result":
                assert event.result is not None
                yield "result", event.result.model_dump_json()
                event = await queue.get()
                continue
            pieces, size = [event.text], len(event.text)
            following: OutputEvent | None = None
            have_following = False
            while not queue.empty() and size < _MERGED_CHARS:
                candidate = queue.get_nowait()
                if candidate is None or candidate.kind != event.kind:
                    following, have_following = candidate, True
                    break
                pieces.append(candidate.text)
                size += len(candidate.text)
            yield event.kind, orjson.dumps({"text": "".join(pieces)}).decode()
            event = following if have_following else await queue.get()
        yield "done", run.result().model_dump_json()
    finally:
        if not run.done():
            run.cancel()
            # Waited for even when this generator is cancelled again: the run's own teardown
            # stops its sandbox child.
            await asyncio.shield(asyncio.wait([run]))


async def _rendered(events: AsyncIterator[tuple[str, str]], scope: Scope) -> AsyncIterator[bytes]:
    """The events as SSE; an error once the stream has begun is an `error` event holding the
    problem document the status line can no longer carry."""
    try:
        async for name, data in events:
            yield f"event: {name}\ndata: {data}\n\n".encode()
    except Exception as exc:
        if not isinstance(exc, CompanionError):  # logged here: the stream has begun
            _log.error("a streamed run failed", exc_info=exc, extra=log_ids(scope))
            exc = CompanionError("An internal error occurred.")
        problem = problem_body(exc, scope["path"], request_id_of(scope), trace_id_of(scope))
        yield b"event: error\ndata: " + orjson.dumps(problem) + b"\n\n"
