"""Every MCP client configuration docs/tools.md documents works: read from the doc, then connected to.

Each stdio entry's command is spawned and spoken to with the official MCP client; each HTTP entry is
called against a running service, with a real API key in place of the client's placeholder.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from companion.api import create_app
from companion.config import load_settings
from tests.tools._served import serve

DOC = Path(__file__).parents[2] / "docs" / "tools.md"
COMPANION = str(Path(sys.executable).parent / "companion")
DOCUMENTED_BASE = "http://127.0.0.1:8000"
# How each client spells "the key from somewhere else": Claude Code, Cursor, VS Code.
PLACEHOLDERS = ("${COMPANION_API_KEY}", "${env:COMPANION_API_KEY}", "${input:companion-api-key}")


def _documented_servers() -> list[tuple[str, dict[str, Any]]]:
    text = DOC.read_text()
    section = text[text.index("### MCP clients") :]
    section = section[: section.index("\n## ")]
    servers: list[tuple[str, dict[str, Any]]] = []
    for block in re.findall(r"```json\n(.*?)```", section, re.S):
        config = json.loads(block)
        entries = config.get("mcpServers") or config["servers"]
        servers.extend(entries.items())
    return servers


SERVERS = _documented_servers()


def test_the_doc_covers_stdio_and_http_for_each_client() -> None:
    kinds = [("stdio" if "command" in entry else "http") for _, entry in SERVERS]
    assert kinds.count("stdio") >= 2  # Claude Desktop / Cursor, VS Code
    assert kinds.count("http") >= 3  # Claude Code, Cursor, VS Code
    for _, entry in SERVERS:
        assert entry.get("type", "stdio" if "command" in entry else "http") in {"stdio", "http"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    app = create_app(
        load_settings(execution_enabled=False, data_dir=tmp_path_factory.mktemp("configs"))
    )
    with serve(app) as url:
        yield url, app


async def _exercise(client: Client, expected: set[str]) -> None:
    names = {tool.name for tool in (await client.list_tools()).tools}
    assert expected <= names, names
    added = await client.call_tool("add", {"a": 2, "b": 3})
    assert added.structured_content == {"result": 5.0}


@pytest.mark.parametrize(
    "entry",
    sorted({json.dumps(e, sort_keys=True) for _, e in SERVERS if "command" in e}),
)
async def test_documented_stdio_entries(entry: str, tmp_path: Path) -> None:
    config = json.loads(entry)
    assert config["command"] == "companion"  # the installed script, here the venv's
    parameters = StdioServerParameters(
        command=COMPANION, args=config["args"], env={"COMPANION_DATA_DIR": str(tmp_path)}
    )
    async with Client(parameters) as client:
        await _exercise(client, {"add", "run_code", "search_knowledge"})


@pytest.mark.parametrize(
    "entry",
    sorted({json.dumps(e, sort_keys=True) for _, e in SERVERS if "url" in e}),
)
async def test_documented_http_entries(entry: str, served: tuple[str, FastAPI]) -> None:
    url, app = served
    _, token = app.state.companion.keys.create("desk", ["tools", "knowledge:read"])
    config = json.loads(entry)
    assert config["url"].startswith(DOCUMENTED_BASE)
    headers: dict[str, str] = {}
    for name, documented in config["headers"].items():
        value = documented
        for placeholder in PLACEHOLDERS:
            value = value.replace(placeholder, token)
        assert "${" not in value, value  # every placeholder is one a test knows how to fill
        headers[name] = value
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(
            streamable_http_client(config["url"].replace(DOCUMENTED_BASE, url), http_client=http)
        ) as client,
    ):
        await _exercise(client, {"add", "search_knowledge"})
