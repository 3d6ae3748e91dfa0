"""`companion mcp` spawned as a client application spawns it (the official client over stdio): the data
directory's knowledge as resources of tenant `default`, both prompts, and a refusal that names the
process holding the embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from companion.config import load_settings
from companion.knowledge import build_knowledge_base
from companion.tools import MCP_SERVICE_REFUSED
from tests.tools._mcp_helpers import COMPANION, fill_locally, read_all_resources

GUIDE = {
    "id": "setup",
    "title": "Setup guide",
    "text": "Install with make, then run companion serve.",
    "metadata": {"part": 1},
}


def _stdio(data_dir: Path, *args: str) -> StdioServerParameters:
    # Started elsewhere than the data directory, as an application starts it.
    return StdioServerParameters(
        command=COMPANION, args=["mcp", *args], env={"COMPANION_DATA_DIR": str(data_dir)}, cwd="/"
    )


async def test_stdio_serves_the_data_directorys_knowledge_and_prompts(tmp_path: Path) -> None:
    await fill_locally(tmp_path, "guides", [GUIDE], "How to run it")
    async with Client(_stdio(tmp_path)) as client:
        uris, _ = await read_all_resources(client)
        assert uris == [
            "companion://collections",
            "companion://collections/guides",
            "companion://collections/guides/documents/setup",
        ]
        read = await client.read_resource(uris[-1])
        assert getattr(read.contents[0], "text", None) == GUIDE["text"]
        assert dict(read.contents[0].meta or {})["metadata"] == {"part": 1}

        # Execution is on (the default): both prompts, their tools listed too.
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert prompts == {"analyze-data", "answer-from-knowledge"}
        got = await client.get_prompt(
            "analyze-data", {"question": "What is the mean price?", "data": "item,price\na,3\nb,5"}
        )
        instructions, data = (getattr(m.content, "text", "") for m in got.messages)
        assert "`run_code` tool" in instructions
        assert "`open_session`" in instructions  # sessions are offered: the prompt says so
        assert instructions.endswith("Question: What is the mean price?")
        assert data == "The data:\n\nitem,price\na,3\nb,5"
        answer = await client.get_prompt(
            "answer-from-knowledge", {"collection": "guides", "question": "How to install?"}
        )
        assert "`guides` (How to run it), which holds 1 document" in getattr(
            answer.messages[0].content, "text", ""
        )


async def test_without_execution_analyze_data_is_not_offered(tmp_path: Path) -> None:
    parameters = _stdio(tmp_path)
    parameters.env = {**(parameters.env or {}), "COMPANION_EXECUTION_ENABLED": "false"}
    async with Client(parameters) as client:
        assert [p.name for p in (await client.list_prompts()).prompts] == ["answer-from-knowledge"]
        assert "run_code" not in {t.name for t in (await client.list_tools()).tools}


async def test_a_store_held_by_another_process_is_a_clear_refusal(tmp_path: Path) -> None:
    await fill_locally(tmp_path, "guides", [GUIDE])
    # This test process holds the embedded store, as a running `companion serve` would.
    holder = build_knowledge_base(load_settings(data_dir=tmp_path), serving=False)
    await holder.start()
    try:
        async with Client(_stdio(tmp_path)) as client:
            with pytest.raises(MCPError) as caught:
                await client.list_resources()
            # Tools that need no store still work.
            assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {
                "result": 3.0
            }
    finally:
        await holder.close()
    assert caught.value.code == MCP_SERVICE_REFUSED
    assert caught.value.data["code"] == "store_in_use"
    assert "open in another process" in caught.value.message
