"""`POST /v1/execute` and `GET /v1/runtimes`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.types import Scope

from companion.api._auth import require
from companion.api._context import request_id_of
from companion.api._limits import InFlight
from companion.api._problems import problem_body
from companion.api._state import State
from companion.errors import CompanionError
from companion.execution import (
    ExecutionRequest,
    ExecutionResult,
    Executor,
    Limits,
    OutputEvent,
)
from companion.keys import ApiKey

__all__ = ["router"]

_log = logging.getLogger("companion.api")

router = APIRouter(prefix="/v1", tags=["execution"])
ExecuteKey = Annotated[ApiKey, Depends(require("execute"))]


class PackageInfo(BaseModel):
    """One package a runtime can import."""

    name: str
    version: str


class RuntimeInfo(BaseModel):
    """One language the service runs, with the limits a request gets and may lower."""

    language: str
    aliases: list[str]
    engine: str
    version: str
    default_limits: Limits
    max_limits: Limits
    packages: list[PackageInfo] = Field(
        description="Packages importable besides the standard library (Python)."
    )
    preloaded: list[str] = Field(
        description="Modules imported before a run starts: importing them costs a run nothing."
    )


class IsolationInfo(BaseModel):
    """One isolation layer and whether it is in force."""

    name: str
    active: bool
    detail: str


class Runtimes(BaseModel):
    """Every runtime, and the isolation layers every run gets."""

    runtimes: list[RuntimeInfo]
    isolation: list[IsolationInfo]


def _in_body(errors: list[Any]) -> list[Any]:
    """pydantic's errors of the request body, located as FastAPI locates them."""
    return [{**error, "loc": ("body", *error["loc"])} for error in errors]


# The body's schema, documented as FastAPI would document a body parameter (the route reads the
# body itself, below), self-contained so no component has to be registered for it.
_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": ExecutionRequest.model_json_schema()}},
}


@router.post(
    "/execute",
    response_model=ExecutionResult,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string", "description": "Server-Sent Events"}
                }
            }
        }
    },
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Run a Python or JavaScript snippet in a sandbox",
    description="Files go in (`files`, text or base64) and come back (`files`: what the run "
    "wrote or changed in its directory); `results` hold the last expression's value, "
    "`display(...)` calls and open matplotlib figures. 429 also means too many runs in flight "
    "for this key; 503 `executor_busy` means every sandbox is busy and the queue is full (retry "
    "after `Retry-After`). With `Accept: text/event-stream` the answer is a stream of Server-Sent "
    "Events: `stdout` and `stderr` (`{text}`) and `result` (one representation of a result) as "
    "the run produces them, then `done` (the whole result), or `error` (a problem document).",
)
async def execute(http: Request, state: State, key: ExecuteKey) -> Response:
    """User errors (exceptions, timeouts, limits) are reported in the result, with status 200.

    The body is parsed and the result serialized here, by pydantic-core straight from and to
    JSON: FastAPI's own body handling and response validation cost ~0.3 ms a run.
    With `Accept: text/event-stream` the output comes as Server-Sent Events while the run goes
    (see `_events`).
    """
    try:
        request = ExecutionRequest.model_validate_json(await http.body())
    except ValidationError as exc:
        raise RequestValidationError(_in_body(exc.errors())) from None
    executor = state.require_executor()
    limit = state.settings.execute_max_concurrent_per_key
    if "text/event-stream" in http.headers.get("accept", ""):
        # A bad request (422) or a full key (429) is answered before the stream begins: the slot
        # is taken here, and the run (started now) gives it back when it ends.
        executor.check(request)
        state.in_flight.acquire(key.key_id, limit)
        queue: asyncio.Queue[OutputEvent | None] = asyncio.Queue()
        run = asyncio.create_task(_held_run(executor, request, key, state.in_flight, queue))
        run.add_done_callback(lambda _: queue.put_nowait(None))
        return StreamingResponse(
            _rendered(_events(run, queue), http.scope),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    async with state.in_flight.slot(key.key_id, limit):
        result = await executor.run(request, tenant=key.tenant)
    return Response(result.model_dump_json(), media_type="application/json")


_MERGED_CHARS = 65536
# Proxies must pass each event on at once.
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _held_run(
    executor: Executor,
    request: ExecutionRequest,
    key: ApiKey,
    in_flight: InFlight,
    queue: asyncio.Queue[OutputEvent | None],
) -> ExecutionResult:
    """The run of a streamed request; it gives the key's slot back when it ends, however it
    ends (a client reading slowly then holds only the bounded output waiting for it)."""
    try:
        return await executor.run(request, tenant=key.tenant, on_output=queue.put_nowait)
    finally:
        in_flight.release(key.key_id)


async def _events(
    run: asyncio.Task[ExecutionResult], queue: asyncio.Queue[OutputEvent | None]
) -> AsyncIterator[tuple[str, str]]:
    """(event, JSON data) pairs: `stdout`/`stderr` `{"text"}` pieces and `result` pieces (a
    rich result's representation) as the run produces them, in order, then `done` with the
    whole `ExecutionResult`. A client that goes away cancels this, which kills the run.

    Pieces of one stream waiting in the queue go out as one event of up to 64 KiB: a run
    printing a line at a time costs the event loop one event per read, not one per line.
    """
    try:
        event = await queue.get()
        while event is not None:
            if event.kind == "result":
                yield "result", _result_data(event)
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
            # kills its sandbox child.
            await asyncio.shield(asyncio.wait([run]))


def _result_data(event: OutputEvent) -> str:
    assert event.result is not None
    return event.result.model_dump_json()


async def _rendered(events: AsyncIterator[tuple[str, str]], scope: Scope) -> AsyncIterator[bytes]:
    """The events as SSE; an error once the stream has begun is an `error` event holding the
    problem document the status line can no longer carry."""
    try:
        async for name, data in events:
            yield f"event: {name}\ndata: {data}\n\n".encode()
    except Exception as exc:
        if not isinstance(exc, CompanionError):  # logged here: the stream has begun
            _log.error("a streamed run failed", exc_info=exc)
            exc = CompanionError("An internal error occurred.")
        problem = problem_body(exc, scope["path"], request_id_of(scope))
        yield b"event: error\ndata: " + orjson.dumps(problem) + b"\n\n"


@router.get("/runtimes", summary="Languages, versions, limits and isolation layers")
async def runtimes(state: State, _: ExecuteKey) -> Runtimes:
    """What `POST /v1/execute` accepts."""
    executor = state.require_executor()
    return Runtimes(
        runtimes=[
            RuntimeInfo(
                language=runtime.language,
                aliases=list(runtime.aliases),
                engine=runtime.engine,
                version=runtime.version,
                default_limits=runtime.default_limits,
                max_limits=runtime.max_limits,
                packages=[PackageInfo(name=p.name, version=p.version) for p in runtime.packages],
                preloaded=executor.preloaded if runtime.language == "python" else [],
            )
            for runtime in executor.runtimes
        ],
        isolation=[
            IsolationInfo(name=layer.name, active=layer.available, detail=layer.detail)
            for layer in executor.layers
        ],
    )
