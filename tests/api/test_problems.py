"""Every error leaves the service as application/problem+json, with no internals."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from companion.api import create_app
from companion.config import load_settings
from companion.errors import Busy, NotFound

PROBLEM = "application/problem+json"


class Item(BaseModel):
    name: str
    tags: list[int]


def _probe_routes() -> APIRouter:
    router = APIRouter()

    @router.post("/probe/items")
    async def create_item(item: Item) -> Item:
        return item

    @router.get("/probe/missing")
    async def missing() -> None:
        raise NotFound("No collection named 'notes'.")

    @router.get("/probe/busy")
    async def busy() -> None:
        raise Busy("The sandbox queue is full.", retry_after_s=2.4)

    @router.get("/probe/crash")
    async def crash() -> None:
        raise RuntimeError("secret detail at /srv/app/db.py: SELECT * FROM keys")

    return router


@pytest.fixture
def app() -> FastAPI:
    app = create_app(load_settings(max_body_bytes=2048, execution_enabled=False))
    app.include_router(_probe_routes())
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert {"type", "title", "status", "detail", "instance", "code"} <= body.keys()
    assert body["status"] == status
    return body


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    body = _problem(client.get("/nowhere"), 404)
    assert body["instance"] == "/nowhere"
    assert body["code"] == "not_found"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    _problem(client.delete("/livez"), 405)


def test_companion_error_keeps_its_status_code_and_message(client: TestClient) -> None:
    body = _problem(client.get("/probe/missing"), 404)
    assert body["detail"] == "No collection named 'notes'."


def test_retryable_error_sets_retry_after(client: TestClient) -> None:
    response = client.get("/probe/busy")
    body = _problem(response, 503)
    assert body["code"] == "busy"
    assert response.headers["retry-after"] == "3"  # 2.4 s rounded up: never too early


def test_validation_names_each_bad_field_by_json_pointer(client: TestClient) -> None:
    response = client.post("/probe/items", json={"name": 3, "tags": [1, "x"], "extra": 1})
    body = _problem(response, 422)
    pointers = {error["pointer"] for error in body["errors"]}  # type: ignore[attr-defined]
    assert pointers == {"/name", "/tags/1"}
    assert body["code"] == "validation_failed"


def test_malformed_json_is_a_400_problem(client: TestClient) -> None:
    response = client.post(
        "/probe/items", content=b'{"name": "a",', headers={"content-type": "application/json"}
    )
    body = _problem(response, 400)
    assert body["code"] == "invalid_input"


def test_declared_oversized_body_is_rejected_before_reading(client: TestClient) -> None:
    payload = json.dumps({"name": "x" * 4096, "tags": []})
    body = _problem(client.post("/probe/items", content=payload), 413)
    assert body["details"] == {"max_body_bytes": 2048}


def test_streamed_oversized_body_is_rejected(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'", "tags": []}'

    _problem(client.post("/probe/items", content=chunks()), 413)


def test_body_within_limit_is_served(client: TestClient) -> None:
    response = client.post("/probe/items", json={"name": "ok", "tags": [1, 2]})
    assert response.status_code == 200
    assert response.json() == {"name": "ok", "tags": [1, 2]}


def test_unexpected_error_reveals_nothing_internal(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = _problem(client.get("/probe/crash"), 500)
    text = json.dumps(body)
    assert "secret" not in text
    assert "/srv" not in text
    assert "SELECT" not in text
    assert "Traceback" not in text
    assert body["detail"] == "An internal error occurred."
    assert any("unhandled error" in record.message for record in caplog.records)


def test_service_keeps_serving_after_a_crash(client: TestClient) -> None:
    client.get("/probe/crash")
    assert client.get("/livez").status_code == 200
