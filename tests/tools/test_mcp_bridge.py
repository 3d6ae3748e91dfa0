"""`companion mcp --url`: a stdio server relaying to a running service (what Claude Desktop's
configuration file can start), spawned for real and spoken to with the official client."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, PromptReference

from companion.api import create_app
from companion.config import load_settings
from tests._services import free_port
from tests.tools._mcp_helpers import COMPANION, fill_over_http, read_all_resources
from tests.tools._served import serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    settings = load_settings(execution_enabled=False, data_dir=tmp_path_factory.mktemp("bridge"))
    app = create_app(settings)
    with serve(app) as url:
        yield url, app


def _bridge(url: str, token: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=COMPANION, args=["mcp", "--url", url], env={"COMPANION_API_KEY": token}, cwd="/"
    )


async def test_the_bridge_relays_as_the_keys_tenant(served: tuple[str, FastAPI]) -> None:
    url, app = served
    keys = app.state.companion.keys
    token = keys.create("bridge-acme", ["tools", "knowledge:read", "knowledge:write"])[1]
    other = keys.create("bridge-zeta", ["tools", "knowledge:read", "knowledge:write"])[1]
    fill_over_http(url, token, "faq", [{"id": "hours", "text": "Open from 9 to 5."}])
    fill_over_http(url, other, "private", [{"id": "x", "text": "Not acme's."}])

    # The base URL is enough: `/mcp` is added.
    async with Client(_bridge(url, token)) as client:
        assert client.instructions is not None
        assert "Companion BaaS tools" in client.instructions
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"add", "search_knowledge", "remember"} <= tools
        assert "run_code" not in tools  # the service has execution disabled
        added = await client.call_tool("add", {"a": 2, "b": 5})
        assert added.structured_content == {"result": 7.0}
        strict = await client.call_tool("add", {"a": "2", "b": 5})
        assert strict.is_error
        assert strict.structured_content is not None
        assert strict.structured_content["code"] == "invalid_arguments"
        found = await client.call_tool("search_knowledge", {"collection": "faq", "query": "open"})
        assert found.structured_content is not None
        assert [hit["document_id"] for hit in found.structured_content["results"]] == ["hours"]

        uris, _ = await read_all_resources(client)
        assert uris == [
            "companion://collections",
            "companion://collections/faq",
            "companion://collections/faq/documents/hours",
        ]
        read = await client.read_resource(uris[-1])
        assert getattr(read.contents[0], "text", None) == "Open from 9 to 5."
        templates = (await client.list_resource_templates()).resource_templates
        assert len(templates) == 2

        # The service's protocol errors come back unchanged.
        with pytest.raises(MCPError) as caught:
            await client.read_resource("companion://collections/private")
        assert caught.value.code == INVALID_PARAMS
        assert caught.value.data["code"] == "collection_not_found"

        prompt = await client.get_prompt(
            "answer-from-knowledge", {"collection": "faq", "question": "When is it open?"}
        )
        assert "`faq`" in getattr(prompt.messages[0].content, "text", "")
        completed = await client.complete(
            PromptReference(name="answer-from-knowledge"), {"name": "collection", "value": "f"}
        )
        assert completed.completion.values == ["faq"]


def _run_bridge(url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # stdin closed at once: a bridge that did start would end at the end of its input.
    return subprocess.run(
        [COMPANION, "mcp", "--url", url],
        env={"PATH": "/usr/bin:/bin", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_bridge_refuses_to_start_without_a_working_key(served: tuple[str, FastAPI]) -> None:
    url, _ = served
    missing = _run_bridge(url, {})
    assert missing.returncode == 2
    assert "companion: --url needs the service's API key: set COMPANION_API_KEY" in missing.stderr
    refused = _run_bridge(url, {"COMPANION_API_KEY": "cmp_nope_nope"})
    assert refused.returncode == 1
    assert f"the service at {url}/mcp refused the key (401)" in refused.stderr
    unreachable = _run_bridge(f"http://127.0.0.1:{free_port()}", {"COMPANION_API_KEY": "k"})
    assert unreachable.returncode == 1
    assert "cannot reach the service at http://127.0.0.1:" in unreachable.stderr
