"""The LangChain adapter against a real service, driven through LangChain's own tool API (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from companion_client import (
    NO_RETRIES,
    AsyncClient,
    Client,
    ConnectionFailed,
    ToolFailed,
    ToolNotFound,
    ValidationFailed,
)
from companion_client.integrations.langchain import (
    CompanionTool,
    alangchain_tools,
    langchain_tools,
)
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool

from companion.api import create_app
from companion.config import load_settings
from tests.integrations.conftest import Service, without_titles
from tests.tools._served import serve

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def _by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {tool.name: tool for tool in tools}


def test_the_tools_are_those_the_service_lists_for_the_key(
    service: Service, client: Client
) -> None:
    tools = langchain_tools(client)
    listed = service.listed(service.agent_key)
    assert [tool.name for tool in tools] == [item["name"] for item in listed]
    assert {"run_code", "search_knowledge", "add", "forecast"} <= {tool.name for tool in tools}
    assert all(isinstance(tool, CompanionTool) for tool in tools)
    with Client(service.url, service.tools_key) as narrow:
        names = {tool.name for tool in langchain_tools(narrow)}
        assert names == {item["name"] for item in service.listed(service.tools_key)}
        assert "run_code" not in names
        with pytest.raises(ToolNotFound, match="no tool run_code for this key") as missing:
            langchain_tools(narrow, names=["add", "run_code"])
        assert missing.value.code == "tool_not_found"


def test_name_description_and_schema_are_carried_over(service: Service, client: Client) -> None:
    listed = {item["name"]: item for item in service.listed(service.agent_key)}
    for tool in langchain_tools(client):
        item = listed[tool.name]
        assert tool.description == item["description"]
        assert tool.args_schema == item["input_schema"]
        # What a model is shown: LangChain's converter drops only the `title` keywords.
        shown = convert_to_openai_tool(tool)["function"]
        assert shown["name"] == tool.name
        assert shown["description"] == item["description"]
        assert shown["parameters"] == without_titles(item["input_schema"])
    # The registered tool's enum, bounds and defaults reach the model (optional ones nullable:
    # null means "the default" to the service).
    days, unit = (listed["forecast"]["input_schema"]["properties"][p] for p in ("days", "unit"))
    assert days["anyOf"][0] == {"maximum": 7, "minimum": 1, "type": "integer"}
    assert unit["anyOf"][0] == {"enum": ["celsius", "fahrenheit"], "type": "string"}
    assert (days["default"], unit["default"]) == (1, "celsius")


def test_names_choose_and_order_the_tools(client: Client) -> None:
    tools = langchain_tools(client, names=["forecast", "add", "forecast"])
    assert [tool.name for tool in tools] == ["forecast", "add"]


def test_invoke_runs_the_tools_on_the_service(client: Client) -> None:
    tools = _by_name(langchain_tools(client, names=["add", "run_code", "forecast"]))
    assert tools["add"].invoke({"a": 5, "b": 3}) == 8.0
    run = tools["run_code"].invoke({"code": "import math\nprint(math.factorial(10))"})
    assert (run["status"], run["stdout"]) == ("ok", "3628800\n")
    assert tools["forecast"].invoke({"city": "Oslo", "days": 2, "unit": "fahrenheit"}) == {
        "city": "Oslo",
        "unit": "fahrenheit",
        "highs": [68, 69],
    }


def test_a_model_tool_call_gets_a_tool_message(client: Client) -> None:
    (tool,) = langchain_tools(client, names=["forecast"])
    call = {"name": "forecast", "args": {"city": "Oslo"}, "id": "call-1", "type": "tool_call"}
    message = tool.invoke(call)
    assert isinstance(message, ToolMessage)
    assert (message.tool_call_id, message.status) == ("call-1", "success")
    assert json.loads(str(message.content)) == {"city": "Oslo", "unit": "celsius", "highs": [20]}


async def test_ainvoke_awaits_the_async_client(client: Client, async_client: AsyncClient) -> None:
    tools = _by_name(await alangchain_tools(async_client, names=["multiply", "run_code"]))
    assert await tools["multiply"].ainvoke({"a": 6, "b": 7}) == 42.0
    run = await tools["run_code"].ainvoke({"code": "print(sum(range(5)))"})
    assert run["stdout"] == "10\n"
    # Built from an async client alone, a tool has no sync call: it says so.
    with pytest.raises(NotImplementedError, match="async client"):
        tools["multiply"].invoke({"a": 1, "b": 2})
    # With both clients, each path uses its own.
    (both,) = langchain_tools(client, names=["multiply"], async_client=async_client)
    assert both.invoke({"a": 2, "b": 3}) == 6.0
    assert await both.ainvoke({"a": 3, "b": 3}) == 9.0


async def test_ainvoke_with_a_sync_client_runs_it_on_a_thread(client: Client) -> None:
    (tool,) = langchain_tools(client, names=["subtract"])
    assert await tool.ainvoke({"a": 10, "b": 4}) == 6.0


def test_invalid_arguments_are_the_model_readable_answer(client: Client) -> None:
    (tool,) = langchain_tools(client, names=["add"])
    answer = tool.invoke({"a": "5", "b": 3})
    assert answer == (
        "invalid arguments for add: /a: Input should be a valid number (invalid_arguments, HTTP 422)"
    )
    call = {"name": "add", "args": {"a": 5}, "id": "call-2", "type": "tool_call"}
    message = tool.invoke(call)
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert "/b" in str(message.content)


def test_failures_raise_tool_exception_when_not_handled(client: Client) -> None:
    tools = _by_name(
        langchain_tools(client, names=["add", "divide", "forecast"], handle_tool_error=False)
    )
    with pytest.raises(ToolException, match="/a: Input should be a valid number") as invalid:
        tools["add"].invoke({"a": "5", "b": 3})
    assert isinstance(invalid.value.__cause__, ValidationFailed)
    assert [e.pointer for e in invalid.value.__cause__.errors] == ["/a"]
    with pytest.raises(ToolException, match=r"divide failed \(division_by_zero\)") as failed:
        tools["divide"].invoke({"a": 1, "b": 0})
    assert isinstance(failed.value.__cause__, ToolFailed)
    with pytest.raises(ToolException, match=r"\(unknown_city\): no forecast under the sea"):
        tools["forecast"].invoke({"city": "Atlantis"})


async def test_a_failing_tool_is_the_answer_when_handled(async_client: AsyncClient) -> None:
    (tool,) = await alangchain_tools(async_client, names=["forecast"])
    answer = await tool.ainvoke({"city": "Atlantis"})
    assert answer == "forecast failed (unknown_city): no forecast under the sea"
    refused = await tool.ainvoke({"city": "Oslo", "days": 8})
    assert "/days" in refused
    assert "(invalid_arguments, HTTP 422)" in refused


def test_a_service_gone_is_a_tool_error_not_a_crash(tmp_path: Path) -> None:
    app = create_app(load_settings(execution_enabled=False, data_dir=tmp_path))
    with serve(app) as url:
        _, key = app.state.companion.keys.create("acme", ["tools"])
        # No retries: a refused connection is reported at once instead of after the backoff.
        gone = Client(url, key, timeout_s=10, retry=NO_RETRIES)
        (handled,) = langchain_tools(gone, names=["add"])
        (raising,) = langchain_tools(gone, names=["add"], handle_tool_error=False)
        assert handled.invoke({"a": 1, "b": 2}) == 3.0
    with gone:  # the server has stopped: nothing listens on its port any more
        assert handled.invoke({"a": 1, "b": 2}).startswith("the service did not answer")
        with pytest.raises(ToolException) as raised:
            raising.invoke({"a": 1, "b": 2})
        assert isinstance(raised.value.__cause__, ConnectionFailed)
