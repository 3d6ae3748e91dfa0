"""The registry as an MCP server (the official SDK's low-level `Server`, so our strict validation runs).

Tools are the registry's; given a knowledge base, the server also offers the caller's collections
and documents as resources (`_mcp_resources`) and prompts that start an agent on a task
(`_mcp_prompts`). Whatever a caller may not use is not listed to it, and asking for it anyway is
a protocol error, as for a tool.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import mcp_types as types
import orjson
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from companion import __version__
from companion.errors import CompanionError, InvalidInput, NotFound
from companion.tools import _mcp_prompts as prompts
from companion.tools._errors import (
    ToolArgumentsInvalid,
    ToolNotFound,
    ToolScopeMissing,
)
from companion.tools._export import jsonable, mcp_output_schema
from companion.tools._mcp_resources import (
    COLLECTION_TEMPLATE,
    DOCUMENT_TEMPLATE,
    KnowledgeResources,
    KnowledgeSource,
    running_knowledge,
)

if TYPE_CHECKING:
    from companion.tools._gate import ToolGate
    from companion.tools._registry import ToolRegistry

__all__ = ["KNOWLEDGE_SCOPE", "MCP_SERVICE_REFUSED", "build_mcp_server", "serve_mcp_stdio"]

# The scope resources and `answer-from-knowledge` read through (as `search_knowledge` does).
KNOWLEDGE_SCOPE = "knowledge:read"
# A read the service refused or could not serve (rate limited, store busy or unavailable): an
# implementation-defined JSON-RPC error; `data` carries our `code`, `details` and `retry_after_s`.
MCP_SERVICE_REFUSED = -32010


def build_mcp_server(
    registry: ToolRegistry,
    *,
    tenant: str = "default",
    tenant_of: Callable[[Any], str | None] | None = None,
    gate_of: Callable[[Any], ToolGate | None] | None = None,
    knowledge: KnowledgeSource | None = None,
    resource_page_size: int = 100,
) -> Server[Any]:
    """An MCP server listing and calling `registry`'s enabled tools, and with `knowledge`, serving
    the caller's collections and documents as resources, and the prompts its tools allow.

    Calls act as `tenant_of(request context)` when it names one (the HTTP service derives it from
    the caller's API key), else as `tenant`. `gate_of(request context)` gives the caller's
    `ToolGate` (the HTTP service's, from the key): `tools/list` shows only the tools it allows
    and each scoped call is admitted by it, as on every other path. Resources need the
    `knowledge:read` scope and count against its limit like `search_knowledge`;
    `resources/list` sends `resource_page_size` resources a page.
    """
    handlers = _Handlers(
        registry,
        tenant=tenant,
        tenant_of=tenant_of,
        gate_of=gate_of,
        knowledge=knowledge,
        page_size=resource_page_size,
    )
    knowledge_handlers: dict[str, Any] = {}
    if knowledge is not None:
        knowledge_handlers = {
            "on_list_resources": handlers.list_resources,
            "on_list_resource_templates": handlers.list_resource_templates,
            "on_read_resource": handlers.read_resource,
            "on_completion": handlers.complete,
        }
    return Server(
        "companion",
        version=__version__,
        instructions=_INSTRUCTIONS + (_KNOWLEDGE_INSTRUCTIONS if knowledge is not None else ""),
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_prompts=handlers.list_prompts,
        on_get_prompt=handlers.get_prompt,
        **knowledge_handlers,
    )


class _Handlers:
    """The server's request handlers over one registry (and knowledge base), for every caller."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        tenant: str,
        tenant_of: Callable[[Any], str | None] | None,
        gate_of: Callable[[Any], ToolGate | None] | None,
        knowledge: KnowledgeSource | None,
        page_size: int,
    ) -> None:
        self._registry = registry
        self._tenant = tenant
        self._tenant_of = tenant_of
        self._gate_of = gate_of
        self._knowledge = knowledge
        self._resources = (
            KnowledgeResources(knowledge, page_size=page_size) if knowledge is not None else None
        )

    # -- the caller ------------------------------------------------------------------------

    def _gate(self, ctx: Any) -> ToolGate | None:
        return self._gate_of(ctx) if self._gate_of is not None else None

    def _caller(self, ctx: Any) -> str:
        if self._tenant_of is None:  # stdio: one tenant, the server's
            return self._tenant
        tenant = self._tenant_of(ctx)
        if not tenant:
            # Over HTTP every request is authenticated first, so this cannot happen; if it ever
            # did, answering as some default tenant would show another tenant's data.
            raise RuntimeError("an MCP request over HTTP reached a handler without its tenant")
        return tenant

    def _may_read(self, ctx: Any) -> bool:
        gate = self._gate(ctx)
        return gate.allows(KNOWLEDGE_SCOPE) if gate is not None else not self._registry.gated

    def _admitted(self, ctx: Any) -> AbstractAsyncContextManager[object]:
        """One use of `knowledge:read` for the caller (its rate limit), or `ToolScopeMissing`."""
        if not self._may_read(ctx):
            raise ToolScopeMissing("reading knowledge resources", KNOWLEDGE_SCOPE)
        gate = self._gate(ctx)
        return gate.admit(KNOWLEDGE_SCOPE) if gate is not None else nullcontext()

    def _offered_prompts(self, visible: set[str]) -> list[prompts.PromptSpec]:
        # `answer-from-knowledge` looks its collection up: only with a knowledge base to look in.
        return [
            spec
            for spec in prompts.offered(visible)
            if self._knowledge is not None or spec is not prompts.ANSWER_FROM_KNOWLEDGE
        ]

    # -- tools -----------------------------------------------------------------------------

    async def list_tools(
        self, ctx: Any, _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        """The tools the caller may call."""
        tools = self._registry.to_mcp(gate=self._gate(ctx))
        return types.ListToolsResult(tools=[types.Tool.model_validate(tool) for tool in tools])

    async def call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """One call: the tool's failures (and bad arguments) are results the model can read."""
        registry = self._registry
        try:
            result = await registry.acall(
                params.name, params.arguments or {}, tenant=self._caller(ctx), gate=self._gate(ctx)
            )
        except (ToolNotFound, ToolScopeMissing) as exc:
            # A tool the caller may not call is not listed to it either: the same protocol error.
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
        except ToolArgumentsInvalid as exc:
            # Reported in the result (not as a protocol error) so the model can correct itself.
            return _error_result(exc.message, {"code": exc.code, "errors": list(exc.errors)})
        except CompanionError as exc:
            # A refused admission (rate limit, runs in flight): the model can wait and retry.
            details = dict(exc.details)
            retry_after_s = getattr(exc, "retry_after_s", None)
            if retry_after_s is not None:
                details["retry_after_s"] = retry_after_s
            return _error_result(exc.message, {"code": exc.code, "details": details})
        if not result.ok:
            assert result.error is not None
            error = result.error
            return _error_result(error.message, {"code": error.code, "details": error.details})
        value = jsonable(result.value)
        structured = value
        if mcp_output_schema(registry.get(params.name)) is not None and not isinstance(value, dict):
            structured = {"result": value}
        return types.CallToolResult(content=_content(value), structured_content=structured)

    # -- prompts ---------------------------------------------------------------------------

    async def list_prompts(
        self, ctx: Any, _params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        """The prompts whose tools the caller is listed."""
        visible = {info.name for info in self._registry.list(gate=self._gate(ctx))}
        return types.ListPromptsResult(
            prompts=[spec.prompt for spec in self._offered_prompts(visible)]
        )

    async def get_prompt(
        self, ctx: Any, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        """A prompt's messages; `answer-from-knowledge` checks its collection exists first."""
        arguments = params.arguments or {}
        visible = {info.name for info in self._registry.list(gate=self._gate(ctx))}
        collection = None
        try:
            spec = prompts.find(params.name, self._offered_prompts(visible), arguments)
            if spec is prompts.ANSWER_FROM_KNOWLEDGE and self._knowledge is not None:
                # Looked up now, so a mistyped name fails here, not after the model's searches.
                async with self._admitted(ctx):
                    running = await running_knowledge(self._knowledge)
                    name = arguments["collection"].strip()
                    collection = await running.get_collection(self._caller(ctx), name)
        except CompanionError as exc:
            raise _protocol_error(exc) from None
        return prompts.render(spec, arguments, visible, collection)

    # -- resources (only with a knowledge base) --------------------------------------------

    async def list_resources(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        """A page of the caller's collections and documents (none without `knowledge:read`)."""
        assert self._resources is not None
        if not self._may_read(ctx):
            return types.ListResourcesResult(resources=[])
        try:
            async with self._admitted(ctx):
                cursor = params.cursor if params is not None else None
                return await self._resources.list_page(self._caller(ctx), cursor)
        except CompanionError as exc:
            raise _protocol_error(exc) from None

    async def list_resource_templates(
        self, ctx: Any, _params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """The collection and document templates (none without `knowledge:read`)."""
        assert self._resources is not None
        listed = self._resources.templates() if self._may_read(ctx) else []
        return types.ListResourceTemplatesResult(resource_templates=listed)

    async def read_resource(
        self, ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        """The contents of one of the caller's resources."""
        assert self._resources is not None
        try:
            async with self._admitted(ctx):
                return await self._resources.read(self._caller(ctx), params.uri)
        except CompanionError as exc:
            raise _protocol_error(exc, uri=params.uri) from None

    async def complete(self, ctx: Any, params: types.CompleteRequestParams) -> types.CompleteResult:
        """Completes a `collection` argument (of the prompt or a template) with the caller's names."""
        assert self._resources is not None
        ref, argument = params.ref, params.argument
        names: list[str] = []
        completes_collection = argument.name == "collection" and (
            (isinstance(ref, types.PromptReference) and ref.name == "answer-from-knowledge")
            or (
                isinstance(ref, types.ResourceTemplateReference)
                and ref.uri in {COLLECTION_TEMPLATE, DOCUMENT_TEMPLATE}
            )
        )
        if completes_collection and self._may_read(ctx):
            try:
                async with self._admitted(ctx):
                    names = await self._resources.collection_names(
                        self._caller(ctx), argument.value
                    )
            except CompanionError as exc:
                raise _protocol_error(exc) from None
        # The protocol caps a completion at 100 values.
        return types.CompleteResult(
            completion=types.Completion(
                values=names[:100], total=len(names), has_more=len(names) > 100
            )
        )


_INSTRUCTIONS = (
    "Companion BaaS tools: arithmetic, text, time, lists, JSON, and (as the caller's "
    "scopes allow) code in a sandbox and knowledge: `list_collections` and "
    "`search_knowledge` to find what you or your users stored, `remember` to store a note."
)
_KNOWLEDGE_INSTRUCTIONS = (
    " The resources companion://collections/{collection}/documents/{document_id} hold whole "
    "documents, for when a search passage is not enough."
)


def _protocol_error(exc: CompanionError, *, uri: str | None = None) -> MCPError:
    """A refused resource or prompt request as a JSON-RPC error: something that does not exist
    for this caller (an unknown URI, collection, document or prompt, or one its scopes do not
    allow) is `INVALID_PARAMS`, as the protocol asks for an unknown resource; anything else
    (rate limited, store unavailable) is `MCP_SERVICE_REFUSED`."""
    data: dict[str, Any] = {"code": exc.code, "details": dict(exc.details)}
    if uri is not None:
        data["uri"] = uri
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        data["retry_after_s"] = retry_after_s
    invalid = isinstance(exc, NotFound | InvalidInput | ToolScopeMissing)
    return MCPError(
        types.INVALID_PARAMS if invalid else MCP_SERVICE_REFUSED, exc.message, data=data
    )


def _content(value: Any) -> list[types.TextContent | types.ImageContent]:
    """The value as JSON text; images among a run's `results` (`run_code`'s figures) also as MCP
    image content, which a client shows to the model as an image. The text names each image in
    place of repeating its base64."""
    images: list[types.TextContent | types.ImageContent] = []
    if isinstance(value, dict) and isinstance(value.get("results"), list):
        shown = []
        for item in value["results"]:
            if (
                isinstance(item, dict)
                and item.get("encoding") == "base64"
                and str(item.get("mime_type")).startswith("image/")
            ):
                images.append(types.ImageContent(data=item["data"], mime_type=item["mime_type"]))
                shown.append({**item, "data": f"(image content {len(images)} of this result)"})
            else:
                shown.append(item)
        value = {**value, "results": shown}
    return [types.TextContent(text=orjson.dumps(value).decode()), *images]


def _error_result(message: str, structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=message)],
        structured_content=structured,
        is_error=True,
    )


async def serve_mcp_stdio(
    registry: ToolRegistry, *, tenant: str = "default", knowledge: KnowledgeSource | None = None
) -> None:
    """Serve `registry` (and `knowledge`'s resources) over stdin/stdout until the client
    disconnects (`companion mcp`)."""
    server = build_mcp_server(registry, tenant=tenant, knowledge=knowledge)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
