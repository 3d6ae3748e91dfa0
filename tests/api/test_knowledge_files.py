"""`POST /v1/collections/{c}/files`: real files of every format uploaded over HTTP, parsed, searched
with their pages and headings; bad files and rows reported while the good ones are kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers
from tests.knowledge.test_parsing import make_docx, make_pdf


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = load_settings(execution_enabled=False, knowledge_max_upload_bytes=200_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return key_headers(client, "knowledge:read", "knowledge:write")


def _search(client: TestClient, headers: dict[str, str], query: str) -> list[dict[str, object]]:
    response = client.post(
        "/v1/collections/docs/search", json={"query": query, "k": 3}, headers=headers
    )
    assert response.status_code == 200, response.text
    hits: list[dict[str, object]] = response.json()["results"]
    return hits


def test_a_folder_of_files_is_parsed_and_searchable_with_pages_and_headings(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert client.put("/v1/collections/docs", json={}, headers=headers).status_code == 201
    pdf = make_pdf(["Tides rise along the harbour wall.", "Keepers log the lighthouse weather."])
    markdown = (
        b"# Ferries\n\nTimes of the morning ferry.\n\n## Winter\n\nThe winter timetable is short.\n"
    )
    html = (
        b"<html><head><title>Gulls</title><script>tracking script</script></head>"
        b"<body><nav>menu</nav><h1>Gulls</h1><p>Gulls nest on the cliffs.</p></body></html>"
    )
    csv = b"id,text\nr1,Crabs hide under rocks\nr2,Starfish,extra,fields\nr3,Seals rest on sandbanks\n"
    jsonl = b'{"id": "j1", "text": "Puffins dive for fish"}\nnot json\n'
    files = [
        ("files", ("guide.pdf", pdf, "application/pdf")),
        ("files", ("manual.docx", make_docx(), "application/octet-stream")),
        ("files", ("ferries.md", markdown, "text/markdown")),
        ("files", ("gulls.html", html, "text/html")),
        ("files", ("shore.csv", csv, "text/csv")),
        ("files", ("notes.jsonl", jsonl, "application/x-ndjson")),
        ("files", ("broken.pdf", b"%PDF-1.7 this is not a pdf", "application/pdf")),
    ]
    response = client.post(
        "/v1/collections/docs/files",
        files=files,
        data={"metadata": '{"batch": 7}'},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    reports = {report["file"]: report for report in body["files"]}
    assert reports["guide.pdf"]["format"] == "pdf"
    assert reports["guide.pdf"]["document_ids"] == ["guide.pdf"]
    assert reports["manual.docx"]["format"] == "docx"  # told apart by content, not the type
    assert sorted(reports["shore.csv"]["document_ids"]) == ["r1", "r3"]
    assert [p["line"] for p in reports["shore.csv"]["problems"]] == [3]
    assert reports["notes.jsonl"]["document_ids"] == ["j1"]
    assert [p["line"] for p in reports["notes.jsonl"]["problems"]] == [2]
    assert reports["broken.pdf"]["document_ids"] == []
    assert reports["broken.pdf"]["problems"][0]["file"] == "broken.pdf"
    assert body["written"] == sum(len(r["document_ids"]) for r in body["files"])
    assert body["problems"] == sum(len(r["problems"]) for r in body["files"])

    [keepers] = _search(client, headers, "lighthouse keepers")[:1]
    assert (keepers["document_id"], keepers["page"]) == ("guide.pdf", 2)
    assert keepers["metadata"]["batch"] == 7
    [winter] = _search(client, headers, "winter timetable")[:1]
    assert winter["headings"] == ["Ferries", "Winter"]
    assert _search(client, headers, "tracking script") == []  # the page's script is not text
    assert _search(client, headers, "seals sandbanks")[0]["document_id"] == "r3"


def test_uploads_are_refused_clearly(client: TestClient, headers: dict[str, str]) -> None:
    missing = client.post(
        "/v1/collections/nope/files",
        files=[("files", ("a.txt", b"x", "text/plain"))],
        headers=headers,
    )
    assert missing.status_code == 404
    client.put("/v1/collections/docs", json={}, headers=headers)
    no_files = client.post("/v1/collections/docs/files", data={"x": "1"}, headers=headers)
    assert no_files.status_code == 400
    assert "files" in no_files.json()["detail"]
    bad_metadata = client.post(
        "/v1/collections/docs/files",
        files=[("files", ("a.txt", b"some text", "text/plain"))],
        data={"metadata": "[1, 2]"},
        headers=headers,
    )
    assert bad_metadata.status_code == 400
    too_big = client.post(
        "/v1/collections/docs/files",
        files=[("files", ("big.txt", b"word " * 60_000, "text/plain"))],
        headers=headers,
    )
    assert too_big.status_code == 413
    read_only = key_headers(client, "knowledge:read")
    refused = client.post(
        "/v1/collections/docs/files",
        files=[("files", ("a.txt", b"some text", "text/plain"))],
        headers=read_only,
    )
    assert refused.status_code == 403


def test_json_documents_may_say_their_content_type(
    client: TestClient, headers: dict[str, str]
) -> None:
    client.put("/v1/collections/docs", json={}, headers=headers)
    page = (
        "<html><head><title>Harbour</title><script>var tracking = 'tracking script';</script>"
        "</head><body><h1>Harbour</h1><h2>Moorings</h2><p>Boats tie up at the east quay.</p>"
        "</body></html>"
    )
    written = client.post(
        "/v1/collections/docs/documents",
        json={"id": "harbour", "text": page, "content_type": "text/html"},
        headers=headers,
    )
    assert written.status_code == 201, written.text
    stored = client.get("/v1/collections/docs/documents/harbour", headers=headers).json()
    assert "<" not in stored["text"]
    assert "tracking" not in stored["text"]
    assert stored["title"] == "Harbour"
    [hit] = _search(client, headers, "east quay")[:1]
    assert hit["headings"] == ["Harbour", "Moorings"]
    assert _search(client, headers, "tracking script") == []
    binary = client.post(
        "/v1/collections/docs/documents",
        json={"id": "x", "text": "a,b\n1,2\n", "content_type": "text/csv"},
        headers=headers,
    )
    assert binary.status_code == 400
    assert "/files" in binary.json()["detail"]


def test_a_pdf_longer_than_a_document_is_stored_in_parts_that_keep_their_pages() -> None:
    settings = load_settings(execution_enabled=False, knowledge_max_document_bytes=2048)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = key_headers(client, "knowledge:read", "knowledge:write")
        client.put("/v1/collections/docs", json={}, headers=headers)
        pages = [
            "\n".join(f"Page {number} line {line} about topic{number}." for line in range(25))
            for number in range(1, 5)
        ]
        upload = client.post(
            "/v1/collections/docs/files",
            files=[("files", ("long.pdf", make_pdf(pages), "application/pdf"))],
            headers=headers,
        )
        assert upload.status_code == 200, upload.text
        [report] = upload.json()["files"]
        assert report["problems"] == []
        assert report["document_ids"][0] == "long.pdf"
        assert len(report["document_ids"]) > 1  # cut between pages
        for number in range(1, 5):
            [hit] = _search(client, headers, f"topic{number}")[:1]
            assert hit["page"] == number
            assert str(hit["document_id"]).startswith("long.pdf")
