"""The OpenAI Agents SDK adapter against a real service, driven through the SDK's own tool API
(`FunctionTool.on_invoke_tool` with a `ToolContext`, as the SDK's runner calls it; no model)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents import FunctionTool, RunContextWrapper
from agents.models.chatcmpl_converter import Converter as ChatConverter
from agents.models.openai_responses import Converter as ResponsesConverter
from agents.tool_context import ToolContext
from companion_client import AsyncClient, Client, ToolFailed, ToolNotFound, ValidationFailed
from companion_client.integrations.openai_agents import (
    aopenai_agents_tools,
    describe_failure,
    openai_agents_tools,
)

from tests.integrations.conftest import Service

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def _by_name(tools: list[FunctionTool]) -> dict[str, FunctionTool]:
    return {tool.name: tool for tool in tools}


async def _invoke(tool: FunctionTool, arguments: dict[str, Any] | str) -> Any:
    """Call `tool` as the SDK's runner does: a `ToolContext` and the model's JSON arguments."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    context = ToolContext(None, tool_name=tool.name, tool_call_id="call-1", tool_arguments=raw)
    return await tool.on_invoke_tool(context, raw)


def test_the_tools_are_those_the_service_lists_for_the_key(
    service: Service, client: Client
) -> None:
    tools = openai_agents_tools(client)
    assert [tool.name for tool in tools] == [i["name"] for i in service.listed(service.agent_key)]
    with Client(service.url, service.tools_key) as narrow:
        names = [tool.name for tool in openai_agents_tools(narrow)]
        assert names == [item["name"] for item in service.listed(service.tools_key)]
        with pytest.raises(ToolNotFound, match="search_knowledge"):
            openai_agents_tools(narrow, names=["search_knowledge"])


def test_the_model_is_sent_the_services_schema(service: Service, client: Client) -> None:
    listed = {item["name"]: item for item in service.listed(service.agent_key)}
    tools = openai_agents_tools(client)
    responses = ResponsesConverter.convert_tools(list(tools), []).tools
    for tool, sent in zip(tools, responses, strict=True):
        item = listed[tool.name]
        assert (tool.description, tool.params_json_schema) == (
            item["description"],
            item["input_schema"],
        )
        assert tool.strict_json_schema is False  # strict mode would rewrite the schema
        assert sent == {
            "type": "function",
            "name": item["name"],
            "description": item["description"],
            "parameters": item["input_schema"],
            "strict": False,
        }
        chat = ChatConverter.tool_to_openai(tool)["function"]
        assert (chat["name"], chat["parameters"]) == (item["name"], item["input_schema"])


async def test_on_invoke_tool_runs_the_tools_on_the_service(async_client: AsyncClient) -> None:
    tools = _by_name(
        await aopenai_agents_tools(async_client, names=["add", "run_code", "uppercase", "forecast"])
    )
    assert await _invoke(tools["add"], {"a": 5, "b": 3}) == "8.0"
    # A value that is not a string reaches the model as JSON.
    run = json.loads(await _invoke(tools["run_code"], {"code": "print(2 ** 10)"}))
    assert (run["status"], run["stdout"]) == ("ok", "1024\n")
    assert await _invoke(tools["uppercase"], {"text": "shout"}) == "SHOUT"
    weather = await _invoke(tools["forecast"], {"city": "Lima", "unit": "fahrenheit"})
    assert json.loads(weather) == {"city": "Lima", "unit": "fahrenheit", "highs": [68]}


async def test_a_sync_client_is_called_on_a_worker_thread(client: Client) -> None:
    (tool,) = openai_agents_tools(client, names=["list_sum"])
    assert await _invoke(tool, {"numbers": [1, 2, 3.5]}) == "6.5"


async def test_invalid_arguments_reach_the_model_with_the_services_detail(
    async_client: AsyncClient,
) -> None:
    (tool,) = await aopenai_agents_tools(async_client, names=["add"])
    assert await _invoke(tool, {"a": "5", "b": 3}) == (
        "invalid arguments for add: /a: Input should be a valid number (invalid_arguments, HTTP 422)"
    )
    assert "/b" in await _invoke(tool, {"a": 1})
    assert await _invoke(tool, "{not json") == (
        "Invalid JSON input for tool add: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )
    assert await _invoke(tool, "[1, 2]") == "Invalid JSON input for tool add: not an object"


async def test_a_failing_tool_goes_to_the_failure_error_function(
    async_client: AsyncClient,
) -> None:
    seen: list[Exception] = []

    async def failure(context: RunContextWrapper[Any], error: Exception) -> str:
        seen.append(error)
        return f"sorry: {describe_failure(context, error)}"

    tools = _by_name(
        await aopenai_agents_tools(
            async_client, names=["divide", "forecast"], failure_error_function=failure
        )
    )
    assert await _invoke(tools["divide"], {"a": 1, "b": 0}) == (
        "sorry: divide failed (division_by_zero): cannot divide by zero"
    )
    assert await _invoke(tools["forecast"], {"city": "Atlantis"}) == (
        "sorry: forecast failed (unknown_city): no forecast under the sea"
    )
    assert [type(error) for error in seen] == [ToolFailed, ToolFailed]
    assert [error.code for error in seen if isinstance(error, ToolFailed)] == [
        "division_by_zero",
        "unknown_city",
    ]


async def test_without_a_failure_error_function_failures_raise(async_client: AsyncClient) -> None:
    tools = _by_name(
        await aopenai_agents_tools(
            async_client, names=["add", "divide"], failure_error_function=None
        )
    )
    with pytest.raises(ValidationFailed) as invalid:
        await _invoke(tools["add"], {"a": "5", "b": 3})
    assert [e.pointer for e in invalid.value.errors] == ["/a"]
    with pytest.raises(ToolFailed, match="cannot divide by zero"):
        await _invoke(tools["divide"], {"a": 1, "b": 0})
