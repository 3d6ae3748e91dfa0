"""Knowledge as MCP resources, and the prompts, over `/mcp`: the official client, a real service on
a loopback port, a real knowledge base, and API keys of two tenants with different scopes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, PromptReference, ResourceTemplateReference

from companion.api import create_app
from companion.config import load_settings
from tests.tools._mcp_helpers import fill_over_http, http_client, read_all_resources
from tests.tools._served import serve

INDEX = "companion://collections"
NOTES = 230  # more than a page of `resources/list` (100) and of a collection's listing (200)
ODD_ID = "guides/setup & run?.md"  # a slash, a space and a `?`: percent-encoded in its URI


class Served:
    """The running service and one key per caller of the tests."""

    def __init__(self, url: str, app: FastAPI) -> None:
        self.url = url
        keys = app.state.companion.keys
        reader = ["tools", "knowledge:read", "knowledge:write"]
        self.acme = keys.create("res-acme", reader)[1]
        self.zeta = keys.create("res-zeta", reader)[1]
        self.tools_only = keys.create("res-acme", ["tools"])[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = load_settings(execution_enabled=False, data_dir=tmp_path_factory.mktemp("res"))
    app = create_app(settings)
    with serve(app) as url:
        callers = Served(url, app)
        handbook: list[dict[str, Any]] = [
            {
                "id": "refunds",
                "title": "Refund policy",
                "text": "Refunds are paid within 14 days of the return.",
                "metadata": {"lang": "en", "year": 2024},
                "source": "handbook/refunds.md",
            },
            {"id": ODD_ID, "text": "Run `make run` and open the dashboard."},
        ]
        fill_over_http(url, callers.acme, "handbook", handbook, "Company handbook")
        notes = [{"id": f"n{i:03d}", "text": f"Note number {i}."} for i in range(NOTES)]
        fill_over_http(url, callers.acme, "notes", notes)
        secret = [{"id": "plan", "text": "Zeta's secret plan."}]
        fill_over_http(url, callers.zeta, "secret", secret)
        yield callers


def _uri(collection: str, document: str | None = None) -> str:
    uri = f"{INDEX}/{collection}"
    return uri if document is None else f"{uri}/documents/{quote(document, safe='')}"


async def _json(client: Client, uri: str) -> Any:
    read = await client.read_resource(uri)
    [contents] = read.contents
    assert contents.uri == uri
    assert contents.mime_type == "application/json"
    assert hasattr(contents, "text")
    return orjson.loads(contents.text)


async def _refused(client: Client, uri: str) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    return caught.value


async def test_resources_list_pages_through_the_tenants_collections(served: Served) -> None:
    async with http_client(served.url, served.acme) as client:
        first = await client.list_resources()
        assert len(first.resources) == 100
        assert first.next_cursor is not None
        assert first.resources[0].uri == INDEX
        by_uri = {resource.uri: resource for resource in first.resources}
        assert by_uri[_uri("handbook")].description == "Company handbook (2 documents)"
        refunds = by_uri[_uri("handbook", "refunds")]
        assert (refunds.name, refunds.title, refunds.mime_type) == (
            "refunds",
            "Refund policy",
            "text/plain",
        )
        assert refunds.size == len(b"Refunds are paid within 14 days of the return.")
        uris, pages = await read_all_resources(client)
    notes = [_uri("notes", f"n{i:03d}") for i in range(NOTES)]
    handbook = [_uri("handbook"), _uri("handbook", ODD_ID), _uri("handbook", "refunds")]
    # Each exactly once, in order: the index, then each collection followed by its documents.
    assert uris == [INDEX, *handbook, _uri("notes"), *notes]
    assert pages == 3
    # Zeta's collection is not among them; zeta sees its own only.
    async with http_client(served.url, served.zeta) as client:
        assert (await read_all_resources(client))[0] == [
            INDEX,
            _uri("secret"),
            _uri("secret", "plan"),
        ]


async def test_reading_the_index_a_collection_and_a_document(served: Served) -> None:
    async with http_client(served.url, served.acme) as client:
        index = await _json(client, INDEX)
        assert [(c["name"], c["document_count"], c["uri"]) for c in index["collections"]] == [
            ("handbook", 2, _uri("handbook")),
            ("notes", NOTES, _uri("notes")),
        ]
        handbook = await _json(client, _uri("handbook"))
        assert handbook["description"] == "Company handbook"
        assert handbook["has_embeddings"] is False
        assert [(d["id"], d["uri"]) for d in handbook["documents"]] == [
            (ODD_ID, _uri("handbook", ODD_ID)),
            ("refunds", _uri("handbook", "refunds")),
        ]
        assert handbook["next_page"] is None

        # A collection's listing comes 200 documents a read; `next_page` names the rest.
        notes = await _json(client, _uri("notes"))
        assert [d["id"] for d in notes["documents"]] == [f"n{i:03d}" for i in range(200)]
        assert notes["next_page"] == f"{_uri('notes')}?after=n199"
        rest = await _json(client, notes["next_page"])
        assert [d["id"] for d in rest["documents"]] == [f"n{i:03d}" for i in range(200, NOTES)]
        assert rest["next_page"] is None

        read = await client.read_resource(_uri("handbook", "refunds"))
        [contents] = read.contents
        assert contents.mime_type == "text/plain"
        assert getattr(contents, "text", None) == "Refunds are paid within 14 days of the return."
        assert contents.meta is not None
        meta = dict(contents.meta)
        assert (meta["collection"], meta["title"], meta["source"]) == (
            "handbook",
            "Refund policy",
            "handbook/refunds.md",
        )
        assert meta["metadata"] == {"lang": "en", "year": 2024}
        odd = await client.read_resource(handbook["documents"][0]["uri"])
        assert getattr(odd.contents[0], "text", None) == "Run `make run` and open the dashboard."


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("https://example.com/collections", "resource_not_found"),
        (f"{INDEX}/handbook/chunks/refunds", "resource_not_found"),
        (f"{INDEX}/nope", "collection_not_found"),
        (f"{INDEX}/secret", "collection_not_found"),  # zeta's: not acme's to see
        (f"{INDEX}/secret/documents/plan", "collection_not_found"),
        (f"{INDEX}/handbook/documents/nope", "document_not_found"),
        (f"{INDEX}/bad%20name", "invalid_input"),
    ],
)
async def test_unknown_resources_are_invalid_params(served: Served, uri: str, code: str) -> None:
    async with http_client(served.url, served.acme) as client:
        error = await _refused(client, uri)
    assert error.code == INVALID_PARAMS
    assert error.data["code"] == code
    assert error.data["uri"] == uri


async def test_a_cursor_the_server_did_not_make_is_refused(served: Served) -> None:
    async with http_client(served.url, served.acme) as client:
        with pytest.raises(MCPError) as caught:
            await client.list_resources(cursor="not-ours")
    assert caught.value.code == INVALID_PARAMS
    assert caught.value.data["code"] == "invalid_cursor"


async def test_templates_and_completion_of_collection_names(served: Served) -> None:
    async with http_client(served.url, served.acme) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == [
            f"{INDEX}/{{collection}}",
            f"{INDEX}/{{collection}}/documents/{{document_id}}",
        ]
        template = ResourceTemplateReference(uri=templates[1].uri_template)
        completed = await client.complete(template, {"name": "collection", "value": "n"})
        assert completed.completion.values == ["notes"]
        prompt = PromptReference(name="answer-from-knowledge")
        completed = await client.complete(prompt, {"name": "collection", "value": ""})
        assert completed.completion.values == ["handbook", "notes"]
        assert completed.completion.total == 2
    async with http_client(served.url, served.zeta) as client:
        completed = await client.complete(prompt, {"name": "collection", "value": ""})
        assert completed.completion.values == ["secret"]


async def test_a_key_without_knowledge_read_is_offered_none_of_it(served: Served) -> None:
    async with http_client(served.url, served.tools_only) as client:
        assert (await client.list_resources()).resources == []
        assert (await client.list_resource_templates()).resource_templates == []
        assert (await client.list_prompts()).prompts == []
        error = await _refused(client, _uri("handbook", "refunds"))
        assert error.code == INVALID_PARAMS
        assert error.data["code"] == "scope_missing"
        assert "`knowledge:read`" in error.message
        with pytest.raises(MCPError) as caught:
            await client.get_prompt(
                "answer-from-knowledge", {"collection": "handbook", "question": "Refunds?"}
            )
        assert caught.value.data["code"] == "prompt_not_found"


async def test_answer_from_knowledge_prompt(served: Served) -> None:
    async with http_client(served.url, served.acme) as client:
        listed = (await client.list_prompts()).prompts
        # `analyze-data` needs `run_code`, which this service (execution disabled) lacks.
        assert [p.name for p in listed] == ["answer-from-knowledge"]
        assert [(a.name, a.required) for a in listed[0].arguments or []] == [
            ("collection", True),
            ("question", True),
        ]
        got = await client.get_prompt(
            "answer-from-knowledge",
            {"collection": "handbook", "question": "How fast are refunds paid?"},
        )
        [message] = got.messages
        assert message.role == "user"
        text = getattr(message.content, "text", "")
        assert "`handbook` (Company handbook), which holds 2 documents" in text
        assert '`search_knowledge` tool (collection "handbook")' in text
        assert "companion://collections/handbook/documents/{document_id}" in text
        assert "`page` and `headings`" in text
        assert "words, not meaning" in text  # no embeddings here: BM25 advice
        assert text.endswith("Question: How fast are refunds paid?")

        for arguments, code in [
            ({"collection": "secret", "question": "?"}, "collection_not_found"),
            ({"collection": "handbook"}, "invalid_prompt_arguments"),
            ({"collection": "handbook", "question": " ", "k": "3"}, "invalid_prompt_arguments"),
        ]:
            with pytest.raises(MCPError) as caught:
                await client.get_prompt("answer-from-knowledge", arguments)
            assert caught.value.code == INVALID_PARAMS
            assert caught.value.data["code"] == code
        assert caught.value.data["details"] == {"missing": ["question"], "unknown": ["k"]}
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("analyze-data", {"question": "Mean?"})
        assert caught.value.data["code"] == "prompt_not_found"
