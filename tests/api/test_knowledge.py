"""`/v1/collections` over HTTP against the real app and the embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers, settings_with_model


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=tmp_path, execution_enabled=False, knowledge_max_document_bytes=2048
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(key_headers(client, "knowledge:read", "knowledge:write"))
        yield client


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


def test_collection_lifecycle(client: TestClient) -> None:
    created = client.post("/v1/collections", json={"name": "docs", "description": "d"})
    assert created.status_code == 201
    assert created.json()["name"] == "docs"
    assert _problem(client.post("/v1/collections", json={"name": "docs"}), 409)["code"] == (
        "collection_exists"
    )
    assert [c["name"] for c in client.get("/v1/collections").json()["collections"]] == ["docs"]
    assert client.get("/v1/collections/docs").json()["document_count"] == 0
    assert client.get("/v1/collections/docs").json()["embeddings"] == {"pending": 0, "embedded": 0}
    assert client.delete("/v1/collections/docs").status_code == 204
    assert _problem(client.get("/v1/collections/docs"), 404)["code"] == "collection_not_found"


def test_put_gets_or_creates_a_collection(client: TestClient) -> None:
    created = client.put("/v1/collections/memory", json={"description": "an agent's notes"})
    assert (created.status_code, created.json()["description"]) == (201, "an agent's notes")
    again = client.put("/v1/collections/memory", json={"description": "other"})
    assert (again.status_code, again.json()["description"]) == (200, "an agent's notes")
    bare = client.put("/v1/collections/bare")  # no body: an empty description
    assert (bare.status_code, bare.json()["description"]) == (201, "")
    assert _problem(client.put("/v1/collections/bad name!"), 400)["code"] == "invalid_input"
    read_only = key_headers(client, "knowledge:read")
    refused = client.put("/v1/collections/other", headers=read_only)
    assert refused.status_code == 403


def test_documents_and_search(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "docs"})
    one = client.post("/v1/collections/docs/documents", json={"id": "a", "text": "Alpha particles"})
    assert (one.status_code, one.json()) == (201, {"ids": ["a"]})
    many = client.post(
        "/v1/collections/docs/documents",
        json={
            "documents": [
                {"text": "Beta decay", "metadata": {"n": 2}},
                {"id": "c", "text": "Gamma rays"},
            ]
        },
    )
    assert many.status_code == 201
    generated, given = many.json()["ids"]
    assert given == "c"
    assert client.get(f"/v1/collections/docs/documents/{generated}").json()["metadata"] == {"n": 2}
    found = client.post("/v1/collections/docs/search", json={"query": "gamma", "k": 5})
    assert found.status_code == 200
    body = found.json()
    assert [r["document_id"] for r in body["results"]] == ["c"]
    assert set(body["results"][0]) >= {
        "document_id",
        "chunk_id",
        "score",
        "text",
        "snippet",
        "metadata",
    }
    assert body["took_ms"] >= 0
    assert client.delete("/v1/collections/docs/documents/c").status_code == 204
    assert (
        _problem(client.get("/v1/collections/docs/documents/c"), 404)["code"]
        == "document_not_found"
    )
    listed = client.get("/v1/collections/docs/documents", params={"limit": 1}).json()
    assert len(listed["documents"]) == 1
    assert listed["next_after"] is not None


def test_a_document_id_with_slashes_is_read_and_deleted_by_its_path(client: TestClient) -> None:
    """`companion ingest` names documents by their path in the folder (`manuals/guide.md`)."""
    client.post("/v1/collections", json={"name": "docs"})
    posted = client.post(
        "/v1/collections/docs/documents", json={"id": "manuals/a b/guide.md", "text": "Delta"}
    )
    assert posted.status_code == 201
    # Encoded or not, the id reaches the route whole.
    for path in ("manuals/a%20b/guide.md", "manuals%2Fa%20b%2Fguide.md"):
        got = client.get(f"/v1/collections/docs/documents/{path}")
        assert (got.status_code, got.json()["id"]) == (200, "manuals/a b/guide.md")
    assert (
        client.delete("/v1/collections/docs/documents/manuals%2Fa%20b%2Fguide.md").status_code
        == 204
    )
    assert client.get("/v1/collections/docs/documents/manuals/a%20b/guide.md").status_code == 404


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"query": "   "}, 400, "invalid_query"),
        ({"query": "x", "k": 0}, 422, "validation_failed"),
        ({"query": "x", "k": 1000}, 422, "validation_failed"),
        ({"query": "x", "mode": "fuzzy"}, 422, "validation_failed"),
        ({"query": "x", "filter": {"a": {"regex": "."}}}, 400, "invalid_filter"),
        ({"query": "x", "filter": {"a": [1]}}, 400, "invalid_filter"),
        ({"query": "x", "mode": "vector"}, 400, "embedder_required"),
        ({"query": "x", "mode": "hybrid"}, 400, "embedder_required"),
    ],
)
def test_bad_searches(
    client: TestClient, payload: dict[str, object], status: int, code: str
) -> None:
    client.post("/v1/collections", json={"name": "docs"})
    assert (
        _problem(client.post("/v1/collections/docs/search", json=payload), status)["code"] == code
    )


def test_huge_query_is_truncated(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "docs"})
    client.post("/v1/collections/docs/documents", json={"id": "a", "text": "needle"})
    response = client.post("/v1/collections/docs/search", json={"query": "needle " + "x" * 10_000})
    assert response.status_code == 200
    assert [r["document_id"] for r in response.json()["results"]] == ["a"]


@pytest.mark.parametrize(
    ("document", "status", "code"),
    [
        ({"text": "x" * 3000}, 413, "document_too_large"),
        ({"text": "x", "metadata": [1, 2]}, 400, "invalid_document"),
        ({"text": ""}, 400, "invalid_document"),
        ({"text": "x", "extra": 1}, 422, "validation_failed"),
    ],
)
def test_bad_documents_write_nothing(
    client: TestClient, document: dict[str, object], status: int, code: str
) -> None:
    client.post("/v1/collections", json={"name": "docs"})
    batch = {"documents": [{"id": "ok", "text": "fine"}, document]}
    assert (
        _problem(client.post("/v1/collections/docs/documents", json=batch), status)["code"] == code
    )
    assert client.get("/v1/collections/docs").json()["document_count"] == 0
    assert client.get("/v1/collections/docs").json()["embeddings"] == {"pending": 0, "embedded": 0}


def test_invalid_utf8_body_is_a_400(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "docs"})
    response = client.post(
        "/v1/collections/docs/documents",
        content=b'{"text": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert client.get("/v1/collections/docs").json()["document_count"] == 0
    assert client.get("/v1/collections/docs").json()["embeddings"] == {"pending": 0, "embedded": 0}


def test_unknown_collection_is_404_everywhere(client: TestClient) -> None:
    assert _problem(client.post("/v1/collections/nope/search", json={"query": "x"}), 404)
    assert _problem(client.post("/v1/collections/nope/documents", json={"text": "x"}), 404)
    assert _problem(client.delete("/v1/collections/nope"), 404)


def test_readyz_reports_the_knowledge_store(client: TestClient) -> None:
    checks = client.get("/readyz").json()["checks"]
    assert checks["knowledge"]["ok"] is True
    assert "sqlite" in checks["knowledge"]["detail"]


def test_hybrid_search_with_the_real_model(tmp_path: Path) -> None:
    settings = settings_with_model(tmp_path)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(key_headers(client, "knowledge:read", "knowledge:write"))
        client.post("/v1/collections", json={"name": "docs"})
        client.post(
            "/v1/collections/docs/documents",
            json={
                "documents": [
                    {"id": "dog", "text": "A puppy fetches a stick."},
                    {"id": "tax", "text": "File the tax return."},
                ]
            },
        )
        body = client.post(
            "/v1/collections/docs/search", json={"query": "young canine playing", "mode": "hybrid"}
        ).json()
        assert body["results"][0]["document_id"] == "dog"
        assert body["embedding_ms"] > 0
        assert (
            "embedder sentence-transformers/all-MiniLM-L6-v2"
            in client.get("/readyz").json()["checks"]["knowledge"]["detail"]
        )


def test_search_knowledge_tool_searches_the_callers_own_collections(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, execution_enabled=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        acme = key_headers(client, "knowledge:write", "knowledge:read", "tools", tenant="acme")
        zeta = key_headers(client, "knowledge:write", "knowledge:read", "tools", tenant="zeta")
        for headers, text in ((acme, "acme keeps its red widgets in hall seven"), (zeta, "zeta")):
            client.post("/v1/collections", json={"name": "notes"}, headers=headers)
            client.post("/v1/collections/notes/documents", json={"text": text}, headers=headers)
        call = {"arguments": {"collection": "notes", "query": "red widgets"}}
        mine = client.post("/v1/tools/search_knowledge/invoke", json=call, headers=acme).json()
        assert mine["ok"] is True, mine
        assert "hall seven" in mine["value"]["results"][0]["text"]
        theirs = client.post("/v1/tools/search_knowledge/invoke", json=call, headers=zeta).json()
        assert theirs["ok"] is True
        assert all("hall seven" not in hit["text"] for hit in theirs["value"]["results"])


def test_bulk_ingest_is_acknowledged_then_embedded_in_the_background(tmp_path: Path) -> None:
    settings = settings_with_model(tmp_path, knowledge_inline_embed_max_chunks=2)
    texts = [
        f"Note {i}: the {animal} sleeps." for i, animal in enumerate("cat dog owl fox".split())
    ]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(key_headers(client, "knowledge:read", "knowledge:write"))
        client.post("/v1/collections", json={"name": "docs"})
        posted = client.post(
            "/v1/collections/docs/documents", json={"documents": [{"text": t} for t in texts]}
        )
        assert posted.status_code == 201  # acknowledged before every chunk has its vector
        progress = client.get("/v1/collections/docs").json()["embeddings"]
        assert progress["pending"] + progress["embedded"] == 4
        bm25 = client.post("/v1/collections/docs/search", json={"query": "owl"}).json()
        assert [hit["text"] for hit in bm25["results"]] == ["Note 2: the owl sleeps."]
        kb = client.app.state.companion.knowledge  # type: ignore[attr-defined]
        assert client.portal is not None
        client.portal.call(lambda: kb.wait_for_embeddings("default", "docs", timeout_s=60))
        assert client.get("/v1/collections/docs").json()["embeddings"] == {
            "pending": 0,
            "embedded": 4,
        }
        vector = client.post(
            "/v1/collections/docs/search", json={"query": "a bird resting", "mode": "vector"}
        ).json()
        assert vector["pending_embeddings"] == 0
        assert vector["results"][0]["text"] == "Note 2: the owl sleeps."
