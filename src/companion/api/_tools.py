"""`/v1/tools` routes, and the registry's MCP server at `/mcp` (streamable HTTP, stateless, JSON)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from companion.api._answer import json_answer
from companion.api._auth import require
from companion.api._context import TENANT
from companion.api._problems import problem_response
from companion.api._state import AppState, State, app_state
from companion.errors import (
    CompanionError,
    FieldError,
    InvalidInput,
    ServiceUnavailable,
    ValidationFailed,
)
from companion.execution import python_package_names
from companion.keys import ApiKey
from companion.keys import Scope as KeyScope
from companion.knowledge import KnowledgeBase
from companion.tools import ToolCall, ToolGate, ToolRegistry, ToolScopeMissing, register_builtins

__all__ = ["KeyGate", "McpEndpoint", "McpService", "router", "start", "stop"]

_log = logging.getLogger("companion.api")

router = APIRouter(prefix="/v1/tools", tags=["tools"])
ToolsKey = Annotated[ApiKey, Depends(require("tools"))]
_STRICT = ConfigDict(extra="forbid")


class ToolSummary(BaseModel):
    """One tool as `GET /v1/tools` lists it."""

    name: str
    description: str
    category: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    pure: bool
    read_only: bool
    idempotent: bool
    timeout_s: float | None
    scope: str | None = Field(
        description="The scope the tool acts through, needed besides `tools` (e.g. `execute`)."
    )


class Invocation(BaseModel):
    """The body of `POST /v1/tools/{name}/invoke`."""

    model_config = _STRICT
    arguments: dict[str, Any] = Field(default_factory=dict, examples=[{"a": 5, "b": 3}])
    timeout_s: float | None = Field(None, gt=0, description="Lower the tool's timeout.")


class BatchCall(BaseModel):
    """One call of a batch."""

    model_config = _STRICT
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(None, max_length=200)


class Batch(BaseModel):
    """The body of `POST /v1/tools/batch`."""

    model_config = _STRICT
    calls: list[BatchCall] = Field(min_length=1)
    max_concurrency: int | None = Field(None, ge=1, le=1024)
    timeout_s: float | None = Field(None, gt=0)


class ErrorBody(BaseModel):
    """Why a call failed."""

    code: str
    message: str
    details: dict[str, Any]


class ResultBody(BaseModel):
    """One call's outcome: a tool's own failure is `ok: false` with status 200."""

    tool: str
    ok: bool
    value: Any = None
    error: ErrorBody | None = None
    duration_ms: float
    cached: bool
    id: str | None = None


class BatchResult(BaseModel):
    """Every call's outcome, in the order sent."""

    results: list[ResultBody]


class KeyGate:
    """The tool gate of one request: the key's scopes, and the limits of what tools act through.

    A scoped call (`run_code` needs `execute`) counts against the same limits as the matching
    route: the scope's rate limit (`rate_limit_execute` for `execute`, the default limit for
    others, in the same per-key buckets as the routes) and, for `execute`, the key's in-flight
    runs (`execute_max_concurrent_per_key`, the slots `POST /v1/execute` takes). The calls of one
    request (a batch) queue for the key's slots instead of failing; a slot taken by another
    request of the key still refuses the call with 429.
    """

    def __init__(self, key: ApiKey, state: AppState) -> None:
        self._key = key
        self._state = state
        self._queues: dict[str, asyncio.Semaphore] = {}

    def allows(self, scope: str) -> bool:
        """Whether the key holds `scope` (`admin` holds every one)."""
        return self._key.allows(cast(KeyScope, scope))

    @contextlib.asynccontextmanager
    async def admit(self, scope: str) -> AsyncIterator[None]:
        """Count the call against the scope's rate limit, and hold an in-flight slot if it has one."""
        state = self._state
        await state.rate_limits.hit(self._key, cast(KeyScope, scope))
        limit = state.settings.execute_max_concurrent_per_key if scope == "execute" else None
        if limit is None:
            yield
            return
        queue = self._queues.get(scope)
        if queue is None:
            queue = self._queues[scope] = asyncio.Semaphore(limit)
        async with queue, state.in_flight.slot(self._key.key_id, limit):
            yield


@router.get(
    "", summary="List the tools this key may call, or export them for OpenAI, Anthropic or MCP"
)
def list_tools(
    state: State,
    key: ToolsKey,
    format: Annotated[Literal["companion", "openai", "anthropic", "mcp"], Query()] = "companion",
    api: Annotated[
        Literal["chat", "responses"] | None,
        Query(description="With `format=openai`: Chat Completions (default) or Responses."),
    ] = None,
    category: str | None = None,
) -> list[dict[str, Any]]:
    """`format=openai` gives strict function tools: nested under `function` for Chat Completions
    (`api=chat`, the default), flat for the Responses API (`api=responses`).

    A tool acting through another scope (`run_code`: `execute`) is listed only for keys holding it.
    """
    registry = state.require_tools()
    gate = KeyGate(key, state)
    if api is not None and format != "openai":
        error = FieldError("/api", "`api` applies only to format=openai", "value_error")
        error["location"] = "query"
        raise ValidationFailed("1 field is invalid.", [error])
    if format == "openai":
        return registry.to_openai(api or "chat", category, gate=gate)
    if format == "anthropic":
        return registry.to_anthropic(category, gate=gate)
    if format == "mcp":
        return registry.to_mcp(category, gate=gate)
    return [_summary(info).model_dump() for info in registry.list(category, gate=gate)]


@router.post("/batch", summary="Call several tools in parallel; each call has its own result")
async def batch(body: Batch, state: State, key: ToolsKey) -> BatchResult:
    """Unknown tools, invalid arguments, missing scopes and exceeded limits are per-call errors."""
    registry = state.require_tools()
    limit = state.settings.tools_max_batch_calls
    if len(body.calls) > limit:
        raise InvalidInput(f"a batch may carry at most {limit} calls, got {len(body.calls)}")
    results = await registry.acall_batch(
        [ToolCall(call.tool, call.arguments, call.id) for call in body.calls],
        tenant=key.tenant,
        max_concurrency=body.max_concurrency,
        timeout_s=body.timeout_s,
        gate=KeyGate(key, state),
    )
    return BatchResult(results=[ResultBody.model_validate(r.as_dict()) for r in results])


@router.get("/{name}", summary="One tool with its schemas")
def get_tool(name: str, state: State, key: ToolsKey) -> ToolSummary:
    """404 `tool_not_found` when it does not exist or is disabled; 403 `scope_missing` when the
    tool acts through a scope the key lacks."""
    registry = state.require_tools()
    info = registry.get(name)
    if not info.enabled:
        registry.call(name, {})  # raises ToolNotFound saying it is disabled
    if not registry.may_call(info, KeyGate(key, state)):
        assert info.scope is not None
        raise ToolScopeMissing(name, info.scope)
    return _summary(info)


@router.post(
    "/{name}/invoke",
    summary="Call one tool",
    description="404: no such tool (or it is disabled). 403 `scope_missing`: the tool acts "
    "through a scope the key lacks (`run_code` needs `execute`). 422: the arguments do not match "
    "the tool's schema; `errors` names each field. 429: the scope's rate limit, or (`execute`) "
    "the key's runs in flight, as on `POST /v1/execute`.",
    response_model=ResultBody,
)
async def invoke(name: str, body: Invocation, request: Request, key: ToolsKey) -> Response:
    """A tool's own failure (e.g. division by zero) is a 200 with `ok: false`."""
    # The state straight from the request, not through the `State` dependency: on the busiest
    # route, each dependency FastAPI solves costs ~10 µs.
    state = app_state(request)
    result = await state.require_tools().acall(
        name,
        body.arguments,
        tenant=key.tenant,
        timeout_s=body.timeout_s,
        gate=KeyGate(key, state),
    )
    # The registry's result is already JSON-ready and shaped as `ResultBody` (a test checks it):
    # encoding it once here saves the response model's validate-then-serialize on the hot path.
    payload = result.as_dict()
    payload.setdefault("id", None)
    return json_answer(payload)


def _summary(info: Any) -> ToolSummary:
    return ToolSummary(
        name=info.name,
        description=info.description,
        category=info.category,
        input_schema=info.input_schema,
        output_schema=info.output_schema,
        pure=info.pure,
        read_only=info.read_only,
        idempotent=info.idempotent,
        timeout_s=info.timeout_s,
        scope=info.scope,
    )


# Where `McpEndpoint` leaves the request's gate for the MCP server's handlers (in the ASGI scope).
_GATE = "companion.tool_gate"


class McpEndpoint:
    """The ASGI endpoint of `/mcp`: guards the request, then hands it to the MCP server."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one MCP request for a key with the `tools` scope (the server starts on first use)."""
        state: AppState = scope["app"].state.companion
        try:
            key = await require("tools")(Request(scope))  # the same guard as every /v1 route
            scope[_GATE] = KeyGate(key, state)
            service = state.mcp
            if service is None:
                raise ServiceUnavailable("the MCP server is not started")
            app = await service.ready()
        except CompanionError as exc:
            await problem_response(exc, scope)(scope, receive, send)
            return
        await app(scope, receive, send)


class McpService:
    """The registry's MCP server, started on the first `/mcp` request in a task of its own.

    Lazy because the MCP SDK costs ~15 MiB of memory; its own task because the session manager's
    task group must be entered and left by the same task (never a request's).
    """

    def __init__(
        self,
        registry: ToolRegistry,
        allowed_hosts: list[str],
        knowledge: Callable[[], KnowledgeBase] | None = None,
    ) -> None:
        self._registry = registry
        self._hosts = allowed_hosts
        self._knowledge = knowledge  # served as resources (the key's tenant's collections)
        self._app: Any = None
        self._started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def ready(self) -> Any:
        """The ASGI app of the running server, starting it if needed."""
        if self._task is None:
            self._task = asyncio.create_task(self._serve(), name="mcp-server")
        await self._started.wait()
        if self._app is None:
            raise ServiceUnavailable(f"the MCP server could not start: {self._failure}")
        return self._app

    async def _serve(self) -> None:
        try:
            from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
            from mcp.server.transport_security import TransportSecuritySettings

            from companion.tools import build_mcp_server

            server = build_mcp_server(
                self._registry,
                tenant_of=_tenant_of_request,
                gate_of=_gate_of_request,
                knowledge=self._knowledge,
            )
            hosts = self._hosts
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection="*" not in hosts,
                allowed_hosts=hosts,
                allowed_origins=[f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts],
            )
            server.streamable_http_app(
                streamable_http_path="/mcp",
                stateless_http=True,
                json_response=True,
                transport_security=security,
            )
            async with server.session_manager.run():
                self._app = StreamableHTTPASGIApp(server.session_manager)
                self._started.set()
                await self._stopping.wait()
        except Exception as exc:  # reported to every waiting request as a 503
            self._failure = exc
            _log.error("the MCP server failed: %s", exc)
        finally:
            self._app = None
            self._started.set()

    async def stop(self) -> None:
        """Stop the server if it ever started."""
        self._stopping.set()
        if self._task is not None:
            await self._task


def _tenant_of_request(context: Any) -> str | None:
    """The tenant the guard stored in the HTTP request's scope (MCP over HTTP only)."""
    request = getattr(context, "request", None)
    scope = getattr(request, "scope", None)
    tenant = scope.get(TENANT) if isinstance(scope, dict) else None
    return tenant if isinstance(tenant, str) else None


def _gate_of_request(context: Any) -> ToolGate | None:
    """The gate `McpEndpoint` built from the request's key (MCP over HTTP only)."""
    request = getattr(context, "request", None)
    scope = getattr(request, "scope", None)
    gate = scope.get(_GATE) if isinstance(scope, dict) else None
    return gate if isinstance(gate, KeyGate) else None


async def start(state: AppState) -> None:
    """Build the registry (built-ins, settings applied); the MCP server waits for its first use."""
    settings = state.settings
    registry = ToolRegistry(
        cache=state.require_cache(),
        monitor=state.monitor,
        cache_ttl_s=settings.tools_cache_ttl_s,
        default_timeout_s=settings.tools_default_timeout_s,
        max_threads=settings.tools_pool_size,
        max_concurrency=settings.tools_max_concurrent_calls,
        disabled=[name.strip() for name in settings.tools_disabled.split(",") if name.strip()],
        # Every route passes the key's gate; a path that forgot would refuse scoped tools.
        gated=True,
        telemetry=state.telemetry,
    )
    register_builtins(
        registry,
        executor=state.require_executor if settings.execution_enabled else None,
        knowledge=state.require_knowledge,
        python_packages=python_package_names(settings),
    )
    state.tools = registry
    hosts = [host.strip() for host in settings.mcp_allowed_hosts.split(",") if host.strip()]
    state.mcp = McpService(registry, hosts, knowledge=state.require_knowledge)


async def stop(state: AppState) -> None:
    """Stop the MCP server and the registry's threads."""
    service, state.mcp = state.mcp, None
    try:
        if service is not None:
            await service.stop()
    finally:
        if state.tools is not None:
            state.tools.close()
