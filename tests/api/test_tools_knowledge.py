"""The knowledge tools over `/v1/tools`: an agent lists, searches and writes its tenant's collections.

The real app and a real knowledge base on the embedded store; every call goes through the HTTP
routes with a real API key (`list_collections` and `search_knowledge` need `knowledge:read`,
`remember` needs `knowledge:write`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers, settings_with_model

KNOWLEDGE_TOOLS = {"list_collections", "search_knowledge", "remember"}
EXPORTS: list[dict[str, str]] = [
    {},
    {"format": "openai"},
    {"format": "openai", "api": "responses"},
    {"format": "anthropic"},
    {"format": "mcp"},
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("data"),
        execution_enabled=False,
        knowledge_max_document_bytes=4096,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _agent(client: TestClient, tenant: str, *scopes: str) -> dict[str, str]:
    """A key of `tenant` with `tools` and `scopes` (both knowledge scopes when none are given)."""
    return key_headers(
        client, "tools", *(scopes or ("knowledge:read", "knowledge:write")), tenant=tenant
    )


def _call(client: TestClient, headers: dict[str, str], tool: str, **arguments: Any) -> Any:
    response = client.post(
        f"/v1/tools/{tool}/invoke", json={"arguments": arguments}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def _value(client: TestClient, headers: dict[str, str], tool: str, **arguments: Any) -> Any:
    body = _call(client, headers, tool, **arguments)
    assert body["ok"] is True, body
    return body["value"]


def _error(client: TestClient, headers: dict[str, str], tool: str, **arguments: Any) -> Any:
    body = _call(client, headers, tool, **arguments)
    assert body["ok"] is False, body
    error: dict[str, Any] = body["error"]
    return error


def _names(tools: list[dict[str, Any]]) -> set[str]:
    return {tool.get("name") or tool["function"]["name"] for tool in tools}


def test_an_agent_remembers_lists_and_finds_its_notes(client: TestClient) -> None:
    agent = _agent(client, "memo")
    assert _value(client, agent, "list_collections") == {"collections": []}
    saved = _value(
        client,
        agent,
        "remember",
        collection="notes",
        text="The customer prefers invoices in euros, sent on the first of the month.",
        title="Invoices",
        metadata={"topic": "billing"},
    )
    assert saved["collection"] == "notes"
    assert saved["collection_created"] is True
    assert saved["document_id"]
    again = _value(client, agent, "remember", collection="notes", text="Call before noon.")
    assert again["collection_created"] is False
    assert again["document_id"] != saved["document_id"]
    assert _value(client, agent, "list_collections") == {
        "collections": [
            {
                "name": "notes",
                "description": "",
                "document_count": 2,
                "chunk_count": 2,
                "has_embeddings": False,
            }
        ]
    }
    found = _value(client, agent, "search_knowledge", collection="notes", query="invoice currency")
    best = found["results"][0]
    assert (best["document_id"], best["title"], best["metadata"]) == (
        saved["document_id"],
        "Invoices",
        {"topic": "billing"},
    )
    # The same collection over the collection routes: the tools wrote what they show.
    reader = key_headers(client, "knowledge:read", tenant="memo")
    stored = client.get(f"/v1/collections/notes/documents/{saved['document_id']}", headers=reader)
    assert stored.json()["text"].startswith("The customer prefers invoices in euros")


def test_remember_with_an_id_replaces_that_document(client: TestClient) -> None:
    agent = _agent(client, "upsert")
    first = _value(
        client, agent, "remember", collection="prefs", id="editor", text="The user edits in vim."
    )
    assert first == {"document_id": "editor", "collection": "prefs", "collection_created": True}
    second = _value(
        client,
        agent,
        "remember",
        collection="prefs",
        id="editor",
        text="The user switched to helix.",
        metadata='{"since": 2025}',  # metadata as JSON text, as OpenAI's strict mode sends it
    )
    assert second == {"document_id": "editor", "collection": "prefs", "collection_created": False}
    assert _value(client, agent, "list_collections")["collections"][0]["document_count"] == 1
    hits = _value(client, agent, "search_knowledge", collection="prefs", query="user")["results"]
    assert [(hit["text"], hit["metadata"]) for hit in hits] == [
        ("The user switched to helix.", {"since": 2025})
    ]


def test_search_passes_the_filter_through(client: TestClient) -> None:
    agent = _agent(client, "filters")
    for lang, year, text in (
        ("en", 2021, "The warranty lasts two years."),
        ("de", 2023, "Die Garantie dauert zwei Jahre; warranty two years."),
        ("en", 2019, "Old warranty: one year."),
    ):
        _value(
            client,
            agent,
            "remember",
            collection="policies",
            id=f"{lang}-{year}",
            text=text,
            metadata={"lang": lang, "year": year},
        )

    def ids(**arguments: Any) -> list[str]:
        value = _value(
            client, agent, "search_knowledge", collection="policies", query="warranty", **arguments
        )
        return sorted(hit["document_id"] for hit in value["results"])

    assert ids() == ["de-2023", "en-2019", "en-2021"]
    assert ids(filter={"lang": "en"}) == ["en-2019", "en-2021"]
    assert ids(filter={"lang": "en", "year": {"gte": 2020}}) == ["en-2021"]
    assert ids(filter='{"lang": "de"}') == ["de-2023"]  # JSON text, for strict-mode models
    assert ids(filter={}) == ids(filter="") == ids(filter=None) == ids()
    # What OpenAI's strict mode sends: every property, null for those the model leaves out.
    assert ids(mode=None, k=None, filter=None) == ids()
    assert ids(k=1, filter={"year": {"lt": 2020}}) == ["en-2019"]


def test_bad_input_is_a_clear_tool_error_never_a_500(client: TestClient) -> None:
    agent = _agent(client, "careless")
    _value(client, agent, "remember", collection="notes", text="Something worth keeping.")
    search = {"collection": "notes", "query": "something"}
    unknown = _error(client, agent, "search_knowledge", collection="nope", query="x")
    assert unknown["code"] == "collection_not_found"
    bad_operator = _error(client, agent, "search_knowledge", **search, filter={"n": {"near": 1}})
    assert bad_operator["code"] == "invalid_filter"
    assert "near" in bad_operator["message"]
    not_an_object = _error(client, agent, "search_knowledge", **search, filter="[1, 2]")
    assert not_an_object["code"] == "invalid_filter"
    not_json = _error(client, agent, "search_knowledge", **search, filter="{lang: en}")
    assert not_json["code"] == "invalid_filter"
    assert "JSON" in not_json["message"]
    assert _error(client, agent, "search_knowledge", **search, k=0)["code"] == "invalid_query"
    blank = _error(client, agent, "search_knowledge", collection="notes", query="  ")
    assert blank["code"] == "invalid_query"

    empty = _error(client, agent, "remember", collection="fresh", text="   ")
    assert empty["code"] == "invalid_document"
    assert "non-empty" in empty["message"]
    bad_metadata = _error(client, agent, "remember", collection="fresh", text="x", metadata="[1]")
    assert bad_metadata["code"] == "invalid_document"
    too_large = _error(client, agent, "remember", collection="fresh", text="x" * 5000)
    assert too_large["code"] == "document_too_large"
    bad_name = _error(client, agent, "remember", collection="no spaces!", text="x")
    assert bad_name["code"] == "invalid_input"
    assert "collection name" in bad_name["message"]
    # A refused document creates no collection.
    names = [c["name"] for c in _value(client, agent, "list_collections")["collections"]]
    assert names == ["notes"]

    # Arguments that do not match the schema are refused before the tool runs (422).
    for tool, arguments in (
        ("remember", {"collection": "notes"}),
        ("search_knowledge", {**search, "mode": "fuzzy"}),
        ("list_collections", {"tenant": "someone-else"}),
    ):
        response = client.post(
            f"/v1/tools/{tool}/invoke", json={"arguments": arguments}, headers=agent
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_arguments"


def test_vector_search_needs_an_embedder_and_says_so(client: TestClient) -> None:
    agent = _agent(client, "lexical")
    _value(client, agent, "remember", collection="notes", text="Plain words only.")
    for mode in ("vector", "hybrid"):
        error = _error(
            client, agent, "search_knowledge", collection="notes", query="words", mode=mode
        )
        assert error["code"] == "embedder_required", error


def test_a_tenant_never_sees_nor_writes_another_tenants_collections(client: TestClient) -> None:
    acme = _agent(client, "acme")
    zeta = _agent(client, "zeta")
    _value(client, acme, "remember", collection="secrets", id="vault", text="The code is 4711.")
    assert _value(client, zeta, "list_collections") == {"collections": []}
    hidden = _error(client, zeta, "search_knowledge", collection="secrets", query="code")
    assert hidden["code"] == "collection_not_found"
    # Writing under the same names makes zeta's own collection and document ...
    mine = _value(client, zeta, "remember", collection="secrets", id="vault", text="Zeta's own.")
    assert mine["collection_created"] is True
    # ... and leaves acme's as they were.
    hits = _value(client, acme, "search_knowledge", collection="secrets", query="code")["results"]
    assert [hit["text"] for hit in hits] == ["The code is 4711."]
    theirs = _value(client, zeta, "search_knowledge", collection="secrets", query="zeta")
    assert [hit["text"] for hit in theirs["results"]] == ["Zeta's own."]
    acme_collections = _value(client, acme, "list_collections")["collections"]
    assert [(c["name"], c["document_count"]) for c in acme_collections] == [("secrets", 1)]


@pytest.mark.parametrize(
    ("scopes", "visible"),
    [
        ((), set()),
        (("knowledge:read",), {"list_collections", "search_knowledge"}),
        (("knowledge:write",), {"remember"}),
        (("knowledge:read", "knowledge:write"), KNOWLEDGE_TOOLS),
        (("admin",), KNOWLEDGE_TOOLS),
    ],
    ids=["tools-only", "read", "write", "read-write", "admin"],
)
def test_each_knowledge_scope_shows_and_runs_its_own_tools(
    client: TestClient, scopes: tuple[str, ...], visible: set[str]
) -> None:
    headers = key_headers(client, "tools", *scopes, tenant="scoped")
    for params in EXPORTS:
        listed = _names(client.get("/v1/tools", params=params, headers=headers).json())
        assert "add" in listed
        assert listed & KNOWLEDGE_TOOLS == visible, params
    needs = {
        "list_collections": "knowledge:read",
        "search_knowledge": "knowledge:read",
        "remember": "knowledge:write",
    }
    arguments = {
        "list_collections": {},
        "search_knowledge": {"collection": "scoped", "query": "x"},
        "remember": {"collection": "scoped", "text": "a note"},
    }
    for tool, scope in needs.items():
        described = client.get(f"/v1/tools/{tool}", headers=headers)
        invoked = client.post(
            f"/v1/tools/{tool}/invoke", json={"arguments": arguments[tool]}, headers=headers
        )
        if tool in visible:
            assert described.json()["scope"] == scope
            assert invoked.status_code == 200, invoked.text
            continue
        for refused in (described, invoked):
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            problem = refused.json()
            assert problem["code"] == "scope_missing"
            assert problem["details"] == {"tool": tool, "scope": scope}
            assert f"`{scope}` scope" in problem["detail"]


def test_a_batch_remembers_in_parallel_and_refuses_per_call(client: TestClient) -> None:
    agent = _agent(client, "batcher")
    calls = [
        {
            "tool": "remember",
            "arguments": {"collection": "log", "text": f"Event {n}."},
            "id": str(n),
        }
        for n in range(6)
    ]
    # Six calls race to create one collection: one creates it, every note lands in it.
    results = client.post("/v1/tools/batch", json={"calls": calls}, headers=agent).json()["results"]
    assert [result["ok"] for result in results] == [True] * 6, results
    assert sum(result["value"]["collection_created"] for result in results) == 1
    assert [result["id"] for result in results] == [str(n) for n in range(6)]
    listed = _value(client, agent, "list_collections")["collections"]
    assert [(c["name"], c["document_count"]) for c in listed] == [("log", 6)]

    reader = _agent(client, "batcher", "knowledge:read")
    mixed = [
        {"tool": "search_knowledge", "arguments": {"collection": "log", "query": "event"}},
        {"tool": "remember", "arguments": {"collection": "log", "text": "Not allowed."}},
        {"tool": "search_knowledge", "arguments": {"collection": "log", "query": "x", "k": 0}},
    ]
    results = client.post("/v1/tools/batch", json={"calls": mixed}, headers=reader).json()[
        "results"
    ]
    assert [r["error"]["code"] if r["error"] else "ok" for r in results] == [
        "ok",
        "scope_missing",
        "invalid_query",
    ]
    assert len(results[0]["value"]["results"]) == 5


def test_hybrid_search_runs_with_an_embedder(tmp_path: Path) -> None:
    settings = settings_with_model(tmp_path)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        agent = _agent(client, "semantic")
        for n, text in enumerate(("The cat sleeps on the sofa.", "Stocks fell sharply today.")):
            _value(client, agent, "remember", collection="notes", id=str(n), text=text)
        listed = _value(client, agent, "list_collections")["collections"]
        assert listed[0]["has_embeddings"] is True
        for mode in ("vector", "hybrid"):
            found = _value(
                client,
                agent,
                "search_knowledge",
                collection="notes",
                query="a kitten napping on the couch",
                mode=mode,
                k=1,
            )
            assert found["embedding_ms"] > 0, mode
            assert [hit["document_id"] for hit in found["results"]] == ["0"], mode
