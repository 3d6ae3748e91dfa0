"""OpenAI Agents SDK: the service's tools as `FunctionTool`s (extra `openai-agents`).

Install with `pip install 'companion-client[openai-agents]'`.

    from agents import Agent
    from companion_client import AsyncClient
    from companion_client.integrations.openai_agents import aopenai_agents_tools

    async with AsyncClient(url, api_key=key) as client:
        agent = Agent(name="analyst", tools=await aopenai_agents_tools(client))

Each tool's `params_json_schema` is the service's JSON input schema as it is, with
`strict_json_schema=False`: the SDK's strict mode would rewrite it (every property required,
optional ones nullable), so the model would see a schema other than the one the service
validates with. The SDK's tools are async only: `on_invoke_tool` awaits the async client, or runs
the sync one on a worker thread. A value that is not a string goes back to the model as JSON (the
SDK would send Python's `str()` of it).

A failed call (the tool's own failure, arguments the service refused, a missing scope, the
service unreachable, arguments that are not a JSON object) goes to `failure_error_function`, as
with the SDK's `function_tool`: its string is the model's answer. The default here gives the
service's detail (`describe_failure`), not the SDK's default fixed sentence, so a model can correct
its call; `failure_error_function=None` raises instead, which fails the run.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from typing import Any

from companion_client import CompanionClientError
from companion_client.integrations._source import (
    AsyncToolSource,
    ToolBinding,
    ToolSource,
    bind,
    failure_message,
    missing_extra,
)

try:
    from agents import FunctionTool, ModelBehaviorError, RunContextWrapper
    from agents.tool import ToolErrorFunction
    from agents.tool_context import ToolContext
except ImportError as _error:  # pragma: no cover - the extra is installed wherever this is tested
    raise missing_extra(
        "the OpenAI Agents SDK (openai-agents)", "openai-agents", _error
    ) from _error

__all__ = ["aopenai_agents_tools", "describe_failure", "openai_agents_tools"]


def describe_failure(context: RunContextWrapper[Any], error: Exception) -> str:
    """The default `failure_error_function`: the service's detail and error code."""
    del context
    return failure_message(error)


def _function_tool(
    binding: ToolBinding, *, failure_error_function: ToolErrorFunction | None = describe_failure
) -> FunctionTool:
    """One bound tool as the SDK's `FunctionTool`."""

    async def on_invoke_tool(context: ToolContext[Any], raw_arguments: str) -> Any:
        try:
            arguments = _arguments(binding.name, raw_arguments)
            value = await binding.acall(arguments)
        except (CompanionClientError, ModelBehaviorError) as error:
            if failure_error_function is None:
                raise
            message = failure_error_function(context, error)
            return await message if inspect.isawaitable(message) else message
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return FunctionTool(
        name=binding.name,
        description=binding.description,
        params_json_schema=binding.schema(),
        on_invoke_tool=on_invoke_tool,
        strict_json_schema=False,
    )


def _arguments(tool: str, raw: str) -> dict[str, Any]:
    """The model's JSON arguments as a dict (`ModelBehaviorError` otherwise, as the SDK's own)."""
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except ValueError as error:
        raise ModelBehaviorError(f"Invalid JSON input for tool {tool}: {error}") from error
    if not isinstance(arguments, dict):
        raise ModelBehaviorError(f"Invalid JSON input for tool {tool}: not an object")
    return arguments


def openai_agents_tools(
    client: ToolSource,
    *,
    names: Iterable[str] | None = None,
    async_client: AsyncToolSource | None = None,
    failure_error_function: ToolErrorFunction | None = describe_failure,
) -> list[FunctionTool]:
    """The tools `client` may call (or those in `names`, in that order) as `FunctionTool`s.

    Calls go through `async_client` when given, else through `client` on a worker thread.
    A name the key is not offered raises `ToolNotFound`.
    """
    bindings = bind(client.list_tools(), names, source=client, async_source=async_client)
    return [_function_tool(b, failure_error_function=failure_error_function) for b in bindings]


async def aopenai_agents_tools(
    client: AsyncToolSource,
    *,
    names: Iterable[str] | None = None,
    failure_error_function: ToolErrorFunction | None = describe_failure,
) -> list[FunctionTool]:
    """`openai_agents_tools` from an async client, which every call then awaits."""
    specs = await client.list_tools()
    bindings = bind(specs, names, source=None, async_source=client)
    return [_function_tool(b, failure_error_function=failure_error_function) for b in bindings]
