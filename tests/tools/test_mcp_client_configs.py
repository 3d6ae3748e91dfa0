"""Every MCP client configuration docs/tools.md documents is what `companion mcp config` prints, and works.

Each JSON block of the doc's "MCP clients" section follows the command that prints it. The test runs that
command, checks it prints the block (the doc's checkout paths replaced by this one's), then connects to what
it printed with the official MCP client: a stdio entry's command is spawned from `/` (as an application spawns
it), an HTTP entry is called on a running service with a real API key in place of the client's placeholder.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from companion.api import create_app
from companion.config import load_settings
from companion.knowledge import build_knowledge_base
from tests.tools._mcp_helpers import COMPANION, fill_locally, fill_over_http, read_all_resources
from tests.tools._served import serve

DOC = Path(__file__).parents[2] / "docs" / "tools.md"
# Where the doc's outputs were printed: a checkout at /work/main, with the default data directory.
DOC_COMPANION = "/work/main/.venv/bin/companion"
DOC_DATA_DIR = "/work/main/.companion"
DOCUMENTED_BASE = "http://127.0.0.1:8000"
# How each client spells "the key from somewhere else": Claude Code, Cursor, VS Code, and the
# placeholder Claude Desktop's user replaces by hand.
PLACEHOLDERS = (
    "${COMPANION_API_KEY}",
    "${env:COMPANION_API_KEY}",
    "${input:companion-api-key}",
    "<your API key>",
)
CLIENTS = ("claude-code", "claude-desktop", "cursor", "vscode")


def _section() -> str:
    text = DOC.read_text()
    section = text[text.index("### MCP clients") :]
    return section[: section.index("\n## ")]


def _documented() -> list[tuple[str, str]]:
    """Each documented `companion mcp config` command line (its options) and the JSON it prints."""
    section = _section()
    pairs = re.findall(
        r"`companion mcp config ([^`]+)` prints:\n\n```json\n(.*?)```", section, re.S
    )
    # No JSON block without the command that prints it.
    assert len(pairs) == len(re.findall(r"```json\n", section))
    return pairs


DOCUMENTED = _documented()


def _localized(block: str, data_dir: Path) -> Any:
    """The documented configuration as this checkout prints it for `data_dir`."""
    return json.loads(block.replace(DOC_COMPANION, COMPANION).replace(DOC_DATA_DIR, str(data_dir)))


def _run_config(
    options: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`companion mcp config ...` run with only `env` from the settings' side."""
    return subprocess.run(
        [COMPANION, "mcp", "config", *options],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _print_config(options: list[str], env: dict[str, str], cwd: Path) -> Any:
    """What `companion mcp config ...` prints (its JSON)."""
    return json.loads(_run_config(options, env, cwd).stdout)


def test_the_doc_covers_every_client_over_stdio_and_http() -> None:
    covered = {
        (shlex.split(options)[0], "--http" in shlex.split(options)) for options, _ in DOCUMENTED
    }
    assert covered == {(client, http) for client in CLIENTS for http in (False, True)}


def test_the_console_example_is_the_cursor_block() -> None:
    section = _section()
    console = section[section.index("```console\n$ .venv/bin/companion mcp config cursor\n") :]
    printed = console.split("\n", 2)[2].split("\n# ")[0]
    assert json.loads(printed) == json.loads(dict(DOCUMENTED)["cursor"])


class Served:
    """The running service, a key of its own tenant, and that tenant's collection."""

    def __init__(self, url: str, app: FastAPI) -> None:
        self.url = url
        scopes = ["tools", "knowledge:read", "knowledge:write"]
        self.token = app.state.companion.keys.create("configs", scopes)[1]
        fill_over_http(url, self.token, "served-notes", [{"id": "a", "text": "Served."}])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app = create_app(
        load_settings(execution_enabled=False, data_dir=tmp_path_factory.mktemp("configs"))
    )
    with serve(app) as url:
        yield Served(url, app)


@asynccontextmanager
async def _connect(config: dict[str, Any], served: Served) -> AsyncIterator[Client]:
    """The official client on the configuration's one server, as its application would start it."""
    [entry] = (config.get("mcpServers") or config["servers"]).values()

    def filled(value: str) -> str:
        for placeholder in PLACEHOLDERS:
            value = value.replace(placeholder, served.token)
        # Every placeholder is one the test knows how to fill.
        assert "${" not in value, value
        assert "<" not in value, value
        return value.replace(DOCUMENTED_BASE, served.url)

    if "command" in entry:
        parameters = StdioServerParameters(
            command=entry["command"],
            args=[filled(arg) for arg in entry["args"]],
            env={name: filled(value) for name, value in entry["env"].items()},
            cwd="/",
        )
        async with Client(parameters) as client:
            yield client
        return
    headers = {name: filled(value) for name, value in entry["headers"].items()}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(filled(entry["url"]), http_client=http)) as client,
    ):
        yield client


async def _exercise(client: Client, collection: str) -> None:
    names = {tool.name for tool in (await client.list_tools()).tools}
    assert {"add", "search_knowledge"} <= names, names
    added = await client.call_tool("add", {"a": 2, "b": 3})
    assert added.structured_content == {"result": 5.0}
    uris, _ = await read_all_resources(client)
    assert f"companion://collections/{collection}" in uris, uris


@pytest.mark.parametrize(("options", "block"), DOCUMENTED, ids=[o for o, _ in DOCUMENTED])
async def test_documented_configs_are_printed_and_connect(
    options: str, block: str, served: Served, tmp_path: Path
) -> None:
    await fill_locally(tmp_path, "local-notes", [{"id": "b", "text": "Local."}])
    printed = _print_config(shlex.split(options), {"COMPANION_DATA_DIR": str(tmp_path)}, tmp_path)
    assert printed == _localized(block, tmp_path)
    async with _connect(printed, served) as client:
        # Over stdio, the data directory's collection; over HTTP (or the relay), the key's.
        await _exercise(client, "served-notes" if "--http" in options else "local-notes")


async def test_the_config_carries_the_settings_of_this_shell(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    await fill_locally(data_dir, "mine", [{"id": "c", "text": "Mine."}])
    config_file = tmp_path / "companion.toml"
    config_file.write_text("knowledge_chunk_chars = 500\nhost = '0.0.0.0'\n")
    env = {
        "COMPANION_DATA_DIR": "data",  # relative to this shell's directory
        "COMPANION_TOOLS_DISABLED": "time",
        "COMPANION_EXECUTION_ENABLED": "false",
        "COMPANION_PORT": "9000",  # the service's own: not the stdio server's
        "COMPANION_CONFIG": str(config_file),
    }
    printed = _print_config(["claude-code"], env, tmp_path)
    entry = printed["mcpServers"]["companion"]
    assert entry["env"] == {
        "COMPANION_DATA_DIR": str(data_dir),
        "COMPANION_EXECUTION_ENABLED": "false",
        "COMPANION_KNOWLEDGE_CHUNK_CHARS": "500",
        "COMPANION_TOOLS_DISABLED": "time",
    }
    parameters = StdioServerParameters(
        command=entry["command"], args=entry["args"], env=entry["env"], cwd="/"
    )
    async with Client(parameters) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "current_datetime" not in names
        assert "run_code" not in names
        assert "add" in names
        uris, _ = await read_all_resources(client)
        assert "companion://collections/mine/documents/c" in uris


async def test_a_secret_setting_is_referred_to_never_printed(
    database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    # A password in the URL (the test server trusts loopback, so it connects all the same).
    parts = urlsplit(database_url)
    password = "never-printed-7f3a"
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    settings = load_settings(
        database_url=url, database_schema=pg_schema, knowledge_embedder="none", data_dir=tmp_path
    )
    knowledge = build_knowledge_base(settings, serving=False)
    await knowledge.start()
    try:
        await knowledge.ensure_collection("default", "shared", "")
        await knowledge.upsert("default", "shared", [{"id": "e", "text": "In PostgreSQL."}])
    finally:
        await knowledge.close()
    env = {
        "COMPANION_DATA_DIR": str(tmp_path),
        "COMPANION_DATABASE_URL": url,
        "COMPANION_DATABASE_SCHEMA": pg_schema,
        "COMPANION_KNOWLEDGE_EMBEDDER": "none",
    }
    references = {
        "claude-code": "${COMPANION_DATABASE_URL}",
        "cursor": "${env:COMPANION_DATABASE_URL}",
        "vscode": "${input:companion-database-url}",
        "claude-desktop": "<your COMPANION_DATABASE_URL>",
    }
    configs = {}
    for client, reference in references.items():
        printed = _run_config([client], env, tmp_path)
        assert password not in printed.stdout + printed.stderr, client
        assert "COMPANION_DATABASE_URL is not written into it" in printed.stderr
        configs[client] = json.loads(printed.stdout)
        [entry] = (configs[client].get("mcpServers") or configs[client]["servers"]).values()
        assert entry["env"]["COMPANION_DATABASE_URL"] == reference, client
        assert entry["env"]["COMPANION_DATABASE_SCHEMA"] == pg_schema
    # VS Code prompts for it.
    assert configs["vscode"]["inputs"] == [
        {
            "type": "promptString",
            "id": "companion-database-url",
            "description": "COMPANION_DATABASE_URL",
            "password": True,
        }
    ]
    # Claude Code expands the reference from the environment it starts in: the stdio server then
    # serves the collection stored in PostgreSQL.
    entry = configs["claude-code"]["mcpServers"]["companion"]
    expanded = {
        name: value.replace(references["claude-code"], url) for name, value in entry["env"].items()
    }
    parameters = StdioServerParameters(
        command=entry["command"], args=entry["args"], env=expanded, cwd="/"
    )
    async with Client(parameters) as session:
        uris, _ = await read_all_resources(session)
    assert "companion://collections/shared/documents/e" in uris


def test_python_dash_m_companion_runs_the_command_line() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "companion", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert version.stdout.startswith("companion ")


async def test_python_dash_m_companion_serves_mcp(tmp_path: Path) -> None:
    await fill_locally(tmp_path, "via-python", [{"id": "d", "text": "Python."}])
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "companion", "mcp"],
        env={"COMPANION_DATA_DIR": str(tmp_path)},
        cwd="/",
    )
    async with Client(parameters) as client:
        await _exercise(client, "via-python")


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
    ],
)
def test_no_oauth_metadata_is_offered(served: Served, path: str) -> None:
    # API keys only (docs/tools.md): a client looking for OAuth finds none.
    assert httpx.get(f"{served.url}{path}", timeout=30).status_code == 404
