"""`POST /v1/execute` and `GET /v1/runtimes`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from companion.api._auth import require
from companion.api._state import State
from companion.execution import ExecutionRequest, ExecutionResult, Limits
from companion.keys import ApiKey

__all__ = ["router"]

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
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Run a Python or JavaScript snippet in a sandbox",
    description="Files go in (`files`, text or base64) and come back (`files`: what the run "
    "wrote or changed in its directory); `results` hold the last expression's value, "
    "`display(...)` calls and open matplotlib figures. 429 also means too many runs in flight "
    "for this key; 503 `executor_busy` means every sandbox is busy and the queue is full (retry "
    "after `Retry-After`).",
)
async def execute(http: Request, state: State, key: ExecuteKey) -> Response:
    """User errors (exceptions, timeouts, limits) are reported in the result, with status 200.

    The body is parsed and the result serialized here, by pydantic-core straight from and to
    JSON: FastAPI's own body handling and response validation cost ~0.3 ms a run.
    """
    try:
        request = ExecutionRequest.model_validate_json(await http.body())
    except ValidationError as exc:
        raise RequestValidationError(_in_body(exc.errors())) from None
    executor = state.require_executor()
    async with state.in_flight.slot(key.key_id, state.settings.execute_max_concurrent_per_key):
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
