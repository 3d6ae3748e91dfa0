"""The LlamaIndex adapter against a real service, driven through LlamaIndex's own tool API (no model)."""

from __future__ import annotations

import json

import pytest
from companion_client import (
    AsyncClient,
    Client,
    ToolFailed,
    ToolNotFound,
    Unauthorized,
    ValidationFailed,
)
from companion_client.integrations.llama_index import (
    CompanionTool,
    allama_index_tools,
    llama_index_tools,
)
from llama_index.core.tools import AsyncBaseTool, ToolOutput
from llama_index.core.tools.calling import acall_tool, call_tool

from tests.integrations.conftest import Service

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def _by_name(tools: list[CompanionTool]) -> dict[str, CompanionTool]:
    return {tool.metadata.get_name(): tool for tool in tools}


def test_the_tools_are_those_the_service_lists_for_the_key(
    service: Service, client: Client
) -> None:
    tools = llama_index_tools(client)
    assert [t.metadata.name for t in tools] == [
        i["name"] for i in service.listed(service.agent_key)
    ]
    assert all(isinstance(tool, AsyncBaseTool) for tool in tools)
    with Client(service.url, service.tools_key) as narrow:
        names = [tool.metadata.name for tool in llama_index_tools(narrow)]
        assert names == [item["name"] for item in service.listed(service.tools_key)]
        with pytest.raises(ToolNotFound, match="run_code"):
            llama_index_tools(narrow, names=["run_code"])


def test_every_schema_view_is_the_services_schema(service: Service, client: Client) -> None:
    listed = {item["name"]: item for item in service.listed(service.agent_key)}
    for tool in llama_index_tools(client):
        item = listed[tool.metadata.get_name()]
        metadata = tool.metadata
        assert metadata.description == item["description"]
        schema = item["input_schema"]
        assert metadata.get_parameters_dict() == schema
        assert json.loads(metadata.fn_schema_str) == schema  # what the ReAct prompt shows
        assert metadata.fn_schema is not None
        assert metadata.fn_schema.model_json_schema() == schema
        shown = metadata.to_openai_tool()["function"]  # what the OpenAI LLM class sends
        assert (shown["name"], shown["parameters"]) == (item["name"], schema)
    # LlamaIndex's own metadata would have dropped these.
    assert listed["add"]["input_schema"]["additionalProperties"] is False


def test_call_and_acall_run_the_tools_on_the_service(client: Client) -> None:
    tools = _by_name(llama_index_tools(client, names=["add", "run_code", "forecast"]))
    output = tools["add"].call(a=5, b=3)
    assert isinstance(output, ToolOutput)
    assert (output.raw_output, output.content, output.is_error) == (8.0, "8.0", False)
    assert output.raw_input == {"a": 5, "b": 3}
    run = tools["run_code"].call(code="print(6 * 7)")
    assert run.raw_output["stdout"] == "42\n"
    assert json.loads(run.content)["status"] == "ok"
    # One dict works as well as keyword arguments.
    weather = tools["forecast"].call({"city": "Oslo", "days": 3})
    assert weather.raw_output == {"city": "Oslo", "unit": "celsius", "highs": [20, 21, 22]}


async def test_acall_awaits_the_async_client(async_client: AsyncClient) -> None:
    tools = _by_name(await allama_index_tools(async_client, names=["power", "run_code"]))
    assert (await tools["power"].acall(base=2, exponent=10)).raw_output == 1024.0
    run = await tools["run_code"].acall(code="print('async')")
    assert run.raw_output["stdout"] == "async\n"
    with pytest.raises(NotImplementedError, match="async client"):
        tools["power"].call(base=2, exponent=2)


async def test_acall_with_a_sync_client_runs_it_on_a_thread(client: Client) -> None:
    (tool,) = llama_index_tools(client, names=["reverse_text"])
    assert (await tool.acall(text="abc")).content == "cba"


def test_the_framework_helpers_call_them(client: Client) -> None:
    # `call_tool` passes a one-argument tool its value by position: it must still arrive.
    tools = _by_name(llama_index_tools(client, names=["sqrt", "add"]))
    assert call_tool(tools["sqrt"], {"x": 16}).raw_output == 4.0
    assert call_tool(tools["add"], {"a": 1, "b": 2}).raw_output == 3.0


async def test_the_framework_async_helper_calls_them(async_client: AsyncClient) -> None:
    (tool,) = await allama_index_tools(async_client, names=["count_words"])
    output = await acall_tool(tool, {"text": "three little words"})
    assert output.raw_output == 3


def test_invalid_arguments_are_an_error_output_with_the_detail(client: Client) -> None:
    (tool,) = llama_index_tools(client, names=["add"])
    output = tool.call(a="5", b=3)
    assert output.is_error
    assert output.content == (
        "invalid arguments for add: /a: Input should be a valid number (invalid_arguments, HTTP 422)"
    )
    assert isinstance(output.exception, ValidationFailed)
    assert [e.pointer for e in output.exception.errors] == ["/a"]
    via_helper = call_tool(tool, {"a": 1})
    assert via_helper.is_error
    assert "/b" in via_helper.content


async def test_a_failing_tool_is_an_error_output(async_client: AsyncClient) -> None:
    tools = _by_name(await allama_index_tools(async_client, names=["divide", "forecast"]))
    divided = await tools["divide"].acall(a=1, b=0)
    assert divided.is_error
    assert divided.content == "divide failed (division_by_zero): cannot divide by zero"
    assert isinstance(divided.exception, ToolFailed)
    assert divided.exception.code == "division_by_zero"
    sunk = await acall_tool(tools["forecast"], {"city": "Atlantis"})
    assert sunk.is_error
    assert sunk.content == "forecast failed (unknown_city): no forecast under the sea"


def test_arguments_that_are_neither_named_nor_one_dict_are_refused(client: Client) -> None:
    (tool,) = llama_index_tools(client, names=["add"])
    with pytest.raises(TypeError, match="by name"):
        tool.call(1, 2)


def test_a_key_revoked_after_listing_is_an_error_output(service: Service) -> None:
    info, token = service.keys.create("acme", ["tools"])
    with Client(service.url, token) as client:
        (tool,) = llama_index_tools(client, names=["add"])
        assert tool.call(a=1, b=1).raw_output == 2.0
        service.keys.revoke(info.key_id)
        output = tool.call(a=1, b=1)
    assert output.is_error
    assert isinstance(output.exception, Unauthorized)
    assert output.content.endswith("(unauthorized, HTTP 401)")
    assert "revoked" in output.content
