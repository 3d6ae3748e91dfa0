"""`companion tools` and `companion mcp` (stdio) serve the service's registry on this machine.

Real subprocesses of the installed script; `companion mcp` is spoken to by the official MCP client
over its stdin and stdout; `run_code` runs in this machine's sandbox and `search_knowledge` reads
what `companion ingest` stored in the same data directory.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

COMPANION = str(Path(sys.executable).parent / "companion")
SCOPED = {"run_code", "list_collections", "search_knowledge", "remember"}


def _env(data_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    return {**clean, "COMPANION_DATA_DIR": str(data_dir)}


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMPANION, *args], capture_output=True, text=True, env=_env(data_dir), timeout=120
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose knowledge base holds one collection, `faq`, ingested by the CLI."""
    root = tmp_path_factory.mktemp("local")
    notes = root / "faq.md"
    notes.write_text("# Refunds\n\nRefunds are processed within five working days.\n")
    data = root / "data"
    done = _run(data, "ingest", str(notes), "--collection", "faq")
    assert done.returncode == 0, done.stderr
    return data


def _stdio(data_dir: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=COMPANION, args=["mcp"], env={"COMPANION_DATA_DIR": str(data_dir)}
    )


def test_tools_list_has_the_services_tools(data_dir: Path) -> None:
    listed = _run(data_dir, "tools", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert {"add", "to_json"} | SCOPED <= names
    assert "sandbox" not in listed.stderr.lower()  # listing starts no sandbox


def test_tools_call_searches_the_local_knowledge_base(data_dir: Path) -> None:
    done = _run(
        data_dir, "tools", "call", "search_knowledge", '{"collection": "faq", "query": "refunds"}'
    )
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["ok"] is True
    assert "five working days" in body["value"]["results"][0]["text"]


@pytest.mark.sandbox
def test_tools_call_runs_code_in_the_local_sandbox(tmp_path: Path) -> None:
    done = _run(tmp_path, "tools", "call", "run_code", '{"code": "print(6 * 7)"}')
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["value"]["status"] == "ok"
    assert body["value"]["stdout"] == "42\n"


async def test_mcp_over_stdio_lists_and_calls_every_tool(data_dir: Path) -> None:
    async with Client(_stdio(data_dir)) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert {"add", "divide"} | SCOPED <= listed
        added = await client.call_tool("add", {"a": 5, "b": 3})
        assert added.structured_content == {"result": 8.0}
        strict = await client.call_tool("add", {"a": "5", "b": 3})
        assert strict.is_error
        found = await client.call_tool("search_knowledge", {"collection": "faq", "query": "refund"})
        assert not found.is_error, found
        assert found.structured_content is not None
        assert found.structured_content["results"][0]["title"] == "Refunds"
        missing = await client.call_tool("search_knowledge", {"collection": "nope", "query": "x"})
        assert missing.is_error
        assert missing.structured_content is not None
        assert missing.structured_content["code"] == "collection_not_found"
        with pytest.raises(MCPError, match="no tool named"):
            await client.call_tool("missing", {})


async def test_mcp_over_stdio_an_agent_remembers_into_the_local_knowledge_base(
    data_dir: Path,
) -> None:
    async with Client(_stdio(data_dir)) as client:
        listed = await client.call_tool("list_collections", {})
        assert listed.structured_content is not None
        collections = {c["name"]: c for c in listed.structured_content["collections"]}
        assert collections["faq"]["document_count"] == 1  # what `companion ingest` stored
        saved = await client.call_tool(
            "remember",
            {
                "collection": "agent-notes",
                "id": "deploy",
                "text": "Deploys happen on Tuesdays after the standup.",
                "metadata": '{"team": "ops"}',
            },
        )
        assert not saved.is_error, saved
        assert saved.structured_content == {
            "document_id": "deploy",
            "collection": "agent-notes",
            "collection_created": True,
        }
        found = await client.call_tool(
            "search_knowledge",
            {"collection": "agent-notes", "query": "deploys", "filter": {"team": "ops"}},
        )
        assert found.structured_content is not None
        assert found.structured_content["results"][0]["document_id"] == "deploy"
        empty = await client.call_tool("remember", {"collection": "agent-notes", "text": " "})
        assert empty.is_error
        assert empty.structured_content is not None
        assert empty.structured_content["code"] == "invalid_document"
    # The local user's tenant is the one `companion search` reads.
    searched = _run(data_dir, "search", "Tuesdays", "--collection", "agent-notes", "--json")
    assert searched.returncode == 0, searched.stdout + searched.stderr
    assert "Deploys happen on Tuesdays" in searched.stdout


@pytest.mark.sandbox
async def test_mcp_over_stdio_runs_code_in_the_local_sandbox(tmp_path: Path) -> None:
    async with Client(_stdio(tmp_path)) as client:
        for n in (1, 2):  # the second run reuses the pool the first one started
            ran = await client.call_tool("run_code", {"code": f"print({n} + 40)"})
            assert not ran.is_error, ran
            assert ran.structured_content is not None
            assert ran.structured_content["stdout"] == f"{n + 40}\n"
        js = await client.call_tool("run_code", {"code": "console.log(2 ** 5)", "language": "js"})
        assert js.structured_content is not None
        assert js.structured_content["stdout"] == "32\n"


@pytest.mark.sandbox
async def test_mcp_run_code_returns_figures_as_image_content(tmp_path: Path) -> None:
    async with Client(_stdio(tmp_path)) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        description = listed["run_code"].description or ""
        assert "pandas" in description, description
        assert "No network" in description
        code = "import matplotlib.pyplot as plt\nplt.plot([3, 1, 2])\nprint('drawn')"
        ran = await client.call_tool("run_code", {"code": code})
    assert not ran.is_error, ran
    text, image = ran.content
    assert text.type == "text"
    assert image.type == "image"
    assert image.mime_type == "image/png"
    assert base64.b64decode(image.data).startswith(b"\x89PNG")
    shown = json.loads(text.text)
    assert shown["stdout"] == "drawn\n"
    assert shown["results"][0]["data"] == "(image content 1 of this result)"


@pytest.mark.sandbox
async def test_mcp_over_stdio_keeps_state_in_a_session(tmp_path: Path) -> None:
    async with Client(_stdio(tmp_path)) as client:
        opened = await client.call_tool("open_session", {"language": "python"})
        assert not opened.is_error, opened
        assert opened.structured_content is not None
        session_id = opened.structured_content["session_id"]
        first = await client.call_tool("run_code", {"code": "x = 41", "session_id": session_id})
        assert not first.is_error, first
        second = await client.call_tool("run_code", {"code": "x + 1", "session_id": session_id})
        assert second.structured_content is not None
        assert second.structured_content["results"][0]["data"] == "42"
        assert second.structured_content["execution_count"] == 2
        stateless = await client.call_tool("run_code", {"code": "print('x' in globals())"})
        assert stateless.structured_content is not None
        assert stateless.structured_content["stdout"] == "False\n"  # no session: a fresh run
        closed = await client.call_tool("close_session", {"session_id": session_id})
        assert not closed.is_error, closed
        after = await client.call_tool("run_code", {"code": "x", "session_id": session_id})
        assert after.is_error
        assert after.structured_content is not None
        assert after.structured_content["code"] == "session_not_found"
