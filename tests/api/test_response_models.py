"""The routes that write their JSON themselves answer exactly what the served `/openapi.json` says
(their `response_model`s, and so the clients' generated types): every required field present, of its
type, none extra. The answers are real ones (a real model, real files, a real monitor), rich enough that each
optional field is seen both set and null."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from companion.api import create_app
from tests.api.conftest import key_headers, settings_with_model
from tests.knowledge.test_parsing import make_pdf


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_with_model(tmp_path)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _holds(
    client: TestClient, response: Any, path: str, method: str, status: int = 200
) -> dict[str, Any]:
    """The answer, after checking its status and that the schema the served OpenAPI document
    gives it (every answer schema forbids fields it does not name) takes it."""
    assert response.status_code == status, response.text
    document = client.get("/openapi.json").json()
    declared = document["paths"][path][method]["responses"][str(status)]
    schema = declared["content"]["application/json"]["schema"]
    assert "$ref" in schema, (path, schema)  # a named model, not a loose object
    component = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert component.get("additionalProperties") is False, component
    body: dict[str, Any] = response.json()
    # The whole document is the root the `#/components/...` references resolve in.
    validator = Draft202012Validator({**document, **schema})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, errors
    return body


def test_knowledge_answers_are_what_their_models_declare(client: TestClient) -> None:
    client.headers.update(key_headers(client, "knowledge:read", "knowledge:write"))
    collection = "/v1/collections/{collection}"
    created = _holds(
        client,
        client.post("/v1/collections", json={"name": "docs"}),
        "/v1/collections",
        "post",
        201,
    )
    assert created["embedding"]["dimension"] == 384
    assert _holds(client, client.put("/v1/collections/docs"), collection, "put")["name"] == "docs"
    made = _holds(client, client.put("/v1/collections/fresh"), collection, "put", 201)
    assert made["document_count"] == 0

    files = [
        ("files", ("guide.pdf", make_pdf(["Tides rise at dawn.", "Keepers log the gales."]), None)),
        ("files", ("ferries.md", b"# Ferries\n\n## Winter\n\nThe winter ferry is slow.\n", None)),
        ("files", ("rows.csv", b"id,text\nr1,Crabs hide\nr2,too,many,fields\n", "text/csv")),
        ("files", ("broken.pdf", b"%PDF-1.7 not a pdf", "application/pdf")),
    ]
    report = _holds(
        client,
        client.post("/v1/collections/docs/files", files=files, data={"metadata": '{"k": 1}'}),
        f"{collection}/files",
        "post",
    )
    by_file = {entry["file"]: entry for entry in report["files"]}
    assert by_file["broken.pdf"]["format"] is None or by_file["broken.pdf"]["problems"]
    assert any(problem["line"] is not None for problem in by_file["rows.csv"]["problems"])
    client.post("/v1/collections/docs/documents", json={"id": "plain", "text": "Gales at sea."})

    listing = _holds(client, client.get("/v1/collections"), "/v1/collections", "get")
    assert [c["name"] for c in listing["collections"]] == ["docs", "fresh"]
    detail = _holds(client, client.get("/v1/collections/docs"), collection, "get")
    assert set(detail["embeddings"]) == {"pending", "embedded"}

    documents = f"{collection}/documents"
    first = _holds(client, client.get("/v1/collections/docs/documents?limit=2"), documents, "get")
    assert first["next_after"] is not None
    rest = client.get(f"/v1/collections/docs/documents?after={first['next_after']}")
    assert _holds(client, rest, documents, "get")["next_after"] is None
    document = client.get("/v1/collections/docs/documents/guide.pdf")
    assert _holds(client, document, f"{documents}/{{document_id}}", "get")["title"] is not None
    plain = client.get("/v1/collections/docs/documents/plain")
    assert _holds(client, plain, f"{documents}/{{document_id}}", "get")["title"] is None

    search = f"{collection}/search"
    pages, headings, nulls = set(), set(), 0
    for mode in ("bm25", "vector", "hybrid"):
        for with_snippets in (True, False):
            body = {"query": "winter gales tides", "mode": mode, "with_snippets": with_snippets}
            found = _holds(
                client, client.post("/v1/collections/docs/search", json=body), search, "post"
            )
            assert found["results"], found
            for hit in found["results"]:
                pages.add(hit["page"])
                headings.add(tuple(hit["headings"]))
                nulls += hit["snippet"] is None
    assert {None, 1, 2} <= pages
    assert ("Ferries", "Winter") in headings
    assert nulls > 0


def test_cache_and_monitoring_answers_are_what_their_models_declare(client: TestClient) -> None:
    client.headers.update(key_headers(client))  # admin
    client.put("/v1/collections/docs")
    client.post("/v1/collections/docs/documents", json={"text": "Gales at sea."})
    for _ in range(2):  # the second search is answered from the cache
        client.post("/v1/collections/docs/search", json={"query": "gales"})
    stats = _holds(client, client.get("/v1/cache/stats"), "/v1/cache/stats", "get")
    assert stats["l1"]["hits"] >= 1, stats
    assert len(stats["hot_keys"]) >= 1, stats

    monitor = client.app.state.companion.monitor  # type: ignore[attr-defined]
    gauge = monitor.gauge("companion_test_backlog", "a backlog", ())
    monitor.set_threshold("companion_test_backlog", 10, "ERROR")
    gauge.set(50)
    monitor.evaluate()
    firing = _holds(client, client.get("/v1/alerts"), "/v1/alerts", "get")
    assert [alert["state"] for alert in firing["active"]] == ["firing"]
    gauge.set(1)
    monitor.evaluate()
    resolved = _holds(client, client.get("/v1/alerts"), "/v1/alerts", "get")
    assert resolved["active"] == []
    assert resolved["history"][0]["resolved_at_s"] is not None

    ready = _holds(client, client.get("/readyz"), "/readyz", "get")
    assert ready["checks"]["knowledge"]["ok"] is True
    report = _holds(client, client.get("/v1/monitoring/report"), "/v1/monitoring/report", "get")
    searches = report["endpoints"]["/v1/collections/{collection}/search"]
    assert searches["count"] >= 2
    assert set(searches["windows"]) >= {"1m"}
    assert report["health"] is not None
    assert report["alerts"]["recent"]
    profile = client.get("/v1/profiling/report?sort_by=count&limit=3")
    rows = _holds(client, profile, "/v1/profiling/report", "get")["stats"]
    assert len(rows) == 3
    assert rows[0]["count"] >= rows[1]["count"]
