"""A key of tenant A can never read, list, search, invalidate or execute as tenant B."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers

ALL = ("execute", "tools", "knowledge:read", "knowledge:write")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(data_dir=tmp_path, execution_pool_size=1, execution_node_enabled=True)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_collections_and_documents_are_invisible_across_tenants(client: TestClient) -> None:
    alice = key_headers(client, *ALL, tenant="alice")
    bob = key_headers(client, *ALL, tenant="bob")
    assert client.post("/v1/collections", json={"name": "notes"}, headers=alice).status_code == 201
    doc = {"id": "d1", "text": "the vault code is 4242"}
    assert (
        client.post("/v1/collections/notes/documents", json=doc, headers=alice).status_code == 201
    )

    assert client.get("/v1/collections", headers=bob).json()["collections"] == []
    for method, path, body in (
        ("GET", "/v1/collections/notes", None),
        ("GET", "/v1/collections/notes/documents", None),
        ("GET", "/v1/collections/notes/documents/d1", None),
        ("POST", "/v1/collections/notes/search", {"query": "vault code"}),
        ("POST", "/v1/collections/notes/documents", {"text": "planted"}),
        ("DELETE", "/v1/collections/notes/documents/d1", None),
        ("DELETE", "/v1/collections/notes", None),
    ):
        response = client.request(method, path, json=body, headers=bob)
        assert response.status_code == 404, (method, path, response.text)  # 404, never 403
    # Bob may own a collection of the same name without touching Alice's.
    assert client.post("/v1/collections", json={"name": "notes"}, headers=bob).status_code == 201
    found = client.post("/v1/collections/notes/search", json={"query": "vault"}, headers=bob)
    assert found.json()["results"] == []
    mine = client.post("/v1/collections/notes/search", json={"query": "vault"}, headers=alice)
    assert mine.json()["results"][0]["document_id"] == "d1"


def test_cache_invalidation_never_crosses_tenants(client: TestClient) -> None:
    cache = client.app.state.companion.cache  # type: ignore[attr-defined]
    cache.set("t:alice:secret", 1)
    bob = key_headers(client, "tools", tenant="bob")
    for body in ({"pattern": "*"}, {"key": "secret"}, {"pattern": "../alice:*"}):
        client.post("/v1/cache/invalidate", json=body, headers=bob)
    assert cache.get("t:alice:secret") == 1


def test_tool_results_are_cached_per_tenant(client: TestClient) -> None:
    call = {"arguments": {"a": 2, "b": 2}}
    alice = key_headers(client, "tools", tenant="alice")
    bob = key_headers(client, "tools", tenant="bob")
    assert client.post("/v1/tools/add/invoke", json=call, headers=alice).json()["cached"] is False
    assert client.post("/v1/tools/add/invoke", json=call, headers=bob).json()["cached"] is False
    assert client.post("/v1/tools/add/invoke", json=call, headers=alice).json()["cached"] is True


@pytest.mark.sandbox
def test_node_workers_never_carry_state_across_tenants(client: TestClient) -> None:
    escape = "const p = this.constructor.constructor('return process')();\n"
    alice = key_headers(client, "execute", tenant="alice")
    bob = key_headers(client, "execute", tenant="bob")
    plant = {"language": "node", "code": escape + "p.__companion_secret = 'alice'"}
    read = {"language": "node", "code": escape + "console.log(String(p.__companion_secret))"}
    assert client.post("/v1/execute", json=plant, headers=alice).json()["status"] == "ok"
    assert client.post("/v1/execute", json=read, headers=bob).json()["stdout"] == "undefined\n"


@pytest.mark.sandbox
def test_python_runs_share_nothing_across_tenants(client: TestClient) -> None:
    alice = key_headers(client, "execute", tenant="alice")
    bob = key_headers(client, "execute", tenant="bob")
    plant = {"language": "python", "code": "open('left.txt', 'w').write('alice')"}
    read = {"language": "python", "code": "import os\nprint(os.listdir('.'))"}
    client.post("/v1/execute", json=plant, headers=alice)
    assert client.post("/v1/execute", json=read, headers=bob).json()["stdout"] == "['main.py']\n"
