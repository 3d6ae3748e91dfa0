"""`POST /v1/execute` and `GET /v1/runtimes`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from companion.api._auth import require
from companion.api._bodies import json_body, parsed_body
from companion.api._state import State
from companion.api._streaming import EVENT_STREAM, streamed_run, wants_events
from companion.execution import ExecutionRequest, ExecutionResult, Limits
from companion.keys import ApiKey

__all__ = ["ExecuteKey", "router"]

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


@router.post(
    "/execute",
    response_model=ExecutionResult,
    responses=EVENT_STREAM,
    openapi_extra={"requestBody": json_body(ExecutionRequest)},
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
    (see `_streaming`).
    """
    request = parsed_body(ExecutionRequest, await http.body())
    executor = state.require_executor()
    limit = state.settings.execute_max_concurrent_per_key
    if wants_events(http):
        # A bad request (422) or a full key (429) is answered before the stream begins: the slot
        # is taken here, and the run (started now) gives it back when it ends.
        executor.check(request)
        state.in_flight.acquire(key.key_id, limit)
        return streamed_run(
            http,
            lambda on_output: executor.run(request, tenant=key.tenant, on_output=on_output),
            lambda: state.in_flight.release(key.key_id),
        )
    async with state.in_flight.slot(key.key_id, limit):
        result = await executor.run(request, tenant=key.tenant)
    return Response(result.model_dump_json(), media_type="application/json")


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
