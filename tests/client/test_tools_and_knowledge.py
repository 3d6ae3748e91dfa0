"""Tools, collections, documents, uploads and search through the client, sync and async, against a
real `companion serve`."""

from __future__ import annotations

import uuid
from contextlib import aclosing
from pathlib import Path

import pytest
from companion_client import (
    AsyncClient,
    BadRequest,
    Client,
    CollectionExists,
    CollectionNotFound,
    DocumentInput,
    DocumentNotFound,
    Forbidden,
    InputFile,
    SearchResult,
    Tool,
    ToolCall,
    ToolFailed,
    ToolNotFound,
    ToolResult,
    ValidationFailed,
)

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]
Server = tuple[str, dict[str, str]]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_tools_list_describe_invoke_and_export(server: Server) -> None:
    url, keys = server
    with Client(url, keys["tools"]) as client:
        tools = client.list_tools()
        by_name = {tool.name: tool for tool in tools}
        add = by_name["add"]
        assert isinstance(add, Tool)
        assert add.description
        assert add.input_schema["required"] == ["a", "b"]
        assert (add.category, add.pure) == ("math", True)
        assert "run_code" not in by_name  # acts through `execute`, which this key lacks
        assert {tool.name for tool in client.list_tools(category="math")} >= {"add", "divide"}
        assert all(tool.category == "math" for tool in client.list_tools(category="math"))
        assert client.get_tool("add") == add

        result = client.invoke_tool("add", {"a": 5, "b": 3})
        assert isinstance(result, ToolResult)
        assert (result.ok, result.output, result.value, result.error) == (True, 8.0, 8.0, None)
        assert result.unwrap() == 8.0
        assert result.duration_ms >= 0

        failed = client.invoke_tool("divide", {"a": 1, "b": 0})  # the tool's own failure
        assert (failed.ok, failed.output) == (False, None)
        assert failed.error is not None
        assert failed.error.code == "division_by_zero"
        with pytest.raises(ToolFailed, match="divide: cannot divide by zero") as raised:
            failed.unwrap()
        assert raised.value.code == "division_by_zero"

        with pytest.raises(ValidationFailed) as invalid:
            client.invoke_tool("add", {"a": "x", "b": 0})
        assert invalid.value.code == "invalid_arguments"
        assert [error.pointer for error in invalid.value.errors] == ["/a"]
        with pytest.raises(ToolNotFound, match="no tool named 'nope'"):
            client.invoke_tool("nope", {})
        with pytest.raises(ToolNotFound):
            client.get_tool("nope")
        with pytest.raises(Forbidden):  # a scoped tool the key may not call
            client.get_tool("run_code")

        openai = client.export_tools("openai", category="math")
        assert openai[0]["type"] == "function"
        assert openai[0]["function"]["strict"] is True
        responses = client.export_tools("openai", api="responses", category="math")
        assert responses[0]["strict"] is True
        assert "function" not in responses[0]
        anthropic = {tool["name"]: tool for tool in client.export_tools("anthropic")}
        assert anthropic["add"]["input_schema"]["required"] == ["a", "b"]
        mcp = {tool["name"]: tool for tool in client.export_tools("mcp")}
        assert mcp["add"]["inputSchema"]["required"] == ["a", "b"]
        with pytest.raises(ValidationFailed):  # `api` applies to OpenAI only
            client.export_tools("mcp", api="chat")


def test_a_batch_gives_each_call_its_own_result(server: Server) -> None:
    url, keys = server
    with Client(url, keys["tools"]) as client:
        results = client.invoke_tools(
            [
                ToolCall("add", {"a": 1, "b": 2}, id="first"),
                ("multiply", {"a": 3, "b": 4}),
                {"tool": "nope", "arguments": {}},
                ToolCall("divide", {"a": 1, "b": 0}),
                ToolCall("add", {"a": "x"}),
            ],
            max_concurrency=2,
            timeout_s=10,
        )
    assert [(r.tool, r.ok) for r in results] == [
        ("add", True),
        ("multiply", True),
        ("nope", False),
        ("divide", False),
        ("add", False),
    ]
    assert (results[0].output, results[0].id, results[1].output) == (3.0, "first", 12.0)
    codes = [r.error.code if r.error else None for r in results]
    assert codes == [None, None, "tool_not_found", "division_by_zero", "invalid_arguments"]


async def test_async_tools(server: Server) -> None:
    url, keys = server
    async with AsyncClient(url, keys["tools"]) as client:
        assert "add" in {tool.name for tool in await client.list_tools()}
        assert (await client.get_tool("add")).name == "add"
        assert (await client.invoke_tool("power", {"base": 2, "exponent": 10})).output == 1024.0
        batch = await client.invoke_tools([("add", {"a": 1, "b": 1}), ("nope", {})])
        assert [r.ok for r in batch] == [True, False]
        assert (await client.export_tools("anthropic", category="math"))[0]["input_schema"]


def test_collections_documents_and_search(server: Server) -> None:
    url, keys = server
    name = _name("notes")
    with Client(url, keys["knowledge"]) as client:
        made = client.create_collection(name, description="team notes")
        assert (made.name, made.description, made.document_count) == (name, "team notes", 0)
        with pytest.raises(CollectionExists):
            client.create_collection(name)
        again = client.ensure_collection(name, description="ignored: it exists")
        assert (again.created, again.description) == (False, "team notes")
        fresh = client.ensure_collection(_name("scratch"))
        assert fresh.created is True
        assert {c.name for c in client.list_collections()} >= {name, fresh.name}
        client.delete_collection(fresh.name)
        with pytest.raises(CollectionNotFound):
            client.get_collection(fresh.name)

        ids = client.add_documents(
            name,
            [
                DocumentInput(
                    "Refunds are processed within five working days.",
                    id="faq-7",
                    title="Refunds",
                    metadata={"team": "support", "year": 2026},
                ),
                DocumentInput("The lighthouse keeper logs the weather.", id="log-1"),
                {
                    "text": "# Shipping\n\n## Abroad\n\nParcels abroad take two weeks.",
                    "id": "ship",
                    "content_type": "text/markdown",
                },
            ],
        )
        assert ids == ["faq-7", "log-1", "ship"]
        [generated] = client.add_documents(name, [DocumentInput("An untitled note.")])
        assert generated

        found = client.search(name, "how long do refunds take")
        assert isinstance(found, SearchResult)
        assert found.hits[0].document_id == "faq-7"
        assert found.hits[0].title == "Refunds"
        assert found.hits[0].metadata == {"team": "support", "year": 2026}
        assert "<mark>" in (found.hits[0].snippet or "")
        assert found.took_ms >= 0
        assert len(found) == len(list(found))
        abroad = client.search(name, "parcels abroad", k=1, with_snippets=False)
        assert [(hit.document_id, hit.headings) for hit in abroad] == [
            ("ship", ("Shipping", "Abroad"))
        ]
        assert abroad.hits[0].snippet is None
        filtered = client.search(name, "refunds weather", filter={"team": "support"})
        assert [hit.document_id for hit in filtered] == ["faq-7"]
        with pytest.raises(BadRequest):  # no embedding model in this service's data directory
            client.search(name, "refunds", mode="vector")

        document = client.get_document(name, "faq-7")
        assert (document.title, document.chunk_count) == ("Refunds", 1)
        assert document.text.startswith("Refunds are processed")
        info = client.get_collection(name)
        assert info.document_count == 4
        assert info.embeddings == {"pending": 0, "embedded": 0}

        first = client.list_documents(name, limit=3)
        assert len(first) == 3
        assert first.next_after == first.documents[-1].id
        rest = client.list_documents(name, limit=3, after=first.next_after)
        assert (len(rest), rest.next_after) == (1, None)
        every = [document.id for document in client.iter_documents(name, page_size=2)]
        assert every == sorted(every)
        assert set(every) == {"faq-7", "log-1", "ship", generated}

        client.delete_document(name, "log-1")
        with pytest.raises(DocumentNotFound):
            client.get_document(name, "log-1")
        assert "log-1" not in [hit.document_id for hit in client.search(name, "lighthouse")]
        client.delete_collection(name)
        with pytest.raises(CollectionNotFound):
            client.search(name, "refunds")


def test_upload_files_from_bytes_paths_and_input_files(server: Server, tmp_path: Path) -> None:
    url, keys = server
    name = _name("library")
    guide = tmp_path / "guide.md"
    guide.write_text("# Guide\n\n## Lighthouses\n\nLighthouse keepers trim the wicks at dusk.\n")
    with Client(url, keys["knowledge"]) as client:
        client.ensure_collection(name)
        uploaded = client.upload_files(
            name,
            {"rows.csv": b"id,text\nr1,Comets have tails.\nr2,Moons orbit planets.\n"},
            metadata={"batch": "one"},
        )
        assert (uploaded.written, uploaded.problems) == (2, 0)
        [report] = uploaded.files
        assert (report.file, report.format, report.document_ids) == (
            "rows.csv",
            "csv",
            ["r1", "r2"],
        )
        from_paths = client.upload_files(name, [guide, InputFile("notes/a.txt", b"Plain notes.")])
        assert [f.file for f in from_paths.files] == ["guide.md", "notes/a.txt"]
        hit = client.search(name, "lighthouse keepers").hits[0]
        assert (hit.document_id, hit.headings) == ("guide.md", ("Guide", "Lighthouses"))
        comet = client.search(name, "comets").hits[0]
        assert comet.metadata["batch"] == "one"
        again = client.upload_files(name, [guide])
        assert (again.written, again.unchanged) == (0, 1)
    with Client(url, keys["reader"]) as reader, pytest.raises(Forbidden):
        reader.upload_files(name, {"x.txt": b"x"})


async def test_async_knowledge(server: Server) -> None:
    url, keys = server
    name = _name("async")
    async with AsyncClient(url, keys["knowledge"]) as client:
        assert (await client.ensure_collection(name)).created is True
        assert (await client.create_collection(_name("other"))).document_count == 0
        await client.add_documents(
            name, [DocumentInput(f"note number {i}", id=f"n{i:02}") for i in range(5)]
        )
        await client.upload_files(name, {"a.md": b"# A\n\nAsynchronous uploads work."})
        assert (await client.get_collection(name)).document_count == 6
        assert [c.name for c in await client.list_collections()].count(name) == 1
        page = await client.list_documents(name, limit=2)
        assert [d.id for d in page] == ["a.md", "n00"]
        async with aclosing(client.iter_documents(name, page_size=4)) as documents:
            ids = [document.id async for document in documents]
        assert ids == ["a.md", "n00", "n01", "n02", "n03", "n04"]
        assert (await client.get_document(name, "n03")).text == "note number 3"
        hits = await client.search(name, "asynchronous uploads")
        assert hits.hits[0].document_id == "a.md"
        await client.delete_document(name, "n03")
        with pytest.raises(DocumentNotFound):
            await client.get_document(name, "n03")
        await client.delete_collection(name)
        with pytest.raises(CollectionNotFound):
            await client.get_collection(name)
