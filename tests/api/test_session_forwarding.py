"""Owner records and the relay's edge cases, on one real node and a real Redis (the relay between
live nodes is exercised in tests/multinode)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests._services import free_port
from tests.api.conftest import key_headers


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def client(redis_url: str, namespace: str) -> Iterator[TestClient]:
    settings = load_settings(
        execution_enabled=False,
        redis_url=redis_url,
        cache_namespace=namespace,
        node_name="node-a",
        node_url="http://127.0.0.1:1",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _record(redis_url: str, namespace: str, session_id: str, node: str, url: str) -> redis.Redis:
    store = redis.Redis.from_url(redis_url)
    store.set(f"{namespace}:session:{session_id}", orjson.dumps({"node": node, "url": url}))
    return store


def test_a_session_whose_node_is_gone_has_ended_and_its_record_is_dropped(
    client: TestClient, redis_url: str, namespace: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = _record(redis_url, namespace, "ses_gone", "node-z", dead)
    response = client.post(
        "/v1/sessions/ses_gone/execute", json={"code": "1"}, headers=key_headers(client)
    )
    assert response.status_code == 410
    body = response.json()
    assert body["code"] == "session_ended"
    assert "node-z" in body["detail"]
    assert response.headers["x-companion-node"] == "node-a"
    assert store.get(f"{namespace}:session:ses_gone") is None
    store.close()


def test_a_relayed_call_is_never_relayed_again(
    client: TestClient, redis_url: str, namespace: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = _record(redis_url, namespace, "ses_loop", "node-z", dead)
    headers = {**key_headers(client, "execute"), "X-Companion-Forwarded-By": "node-z"}
    response = client.get("/v1/sessions/ses_loop", headers=headers)
    # Answered here (this node runs no sandbox: 503), not relayed; the record stays for its owner.
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "sandbox_unavailable"
    assert store.get(f"{namespace}:session:ses_loop") is not None
    store.close()


def test_a_record_naming_this_node_is_answered_here(
    client: TestClient, redis_url: str, namespace: str
) -> None:
    store = _record(redis_url, namespace, "ses_mine", "node-a", "http://127.0.0.1:1")
    response = client.get("/v1/sessions/ses_mine", headers=key_headers(client, "execute"))
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "sandbox_unavailable"
    assert response.headers.get("x-companion-session-node") is None
    store.close()


def test_without_a_node_url_nothing_is_relayed(redis_url: str, namespace: str) -> None:
    settings = load_settings(
        execution_enabled=False, redis_url=redis_url, cache_namespace=namespace
    )
    dead = f"http://127.0.0.1:{free_port()}"
    store = _record(redis_url, namespace, "ses_x", "node-z", dead)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/v1/sessions/ses_x", headers=key_headers(client, "execute"))
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "sandbox_unavailable"
    store.close()


@pytest.mark.sandbox
def test_a_listing_names_the_nodes_that_did_not_answer(redis_url: str, namespace: str) -> None:
    settings = load_settings(
        redis_url=redis_url,
        cache_namespace=namespace,
        node_name="node-a",
        node_url="http://127.0.0.1:1",
        execution_pool_size=1,
        execution_session_spares=0,
    )
    dead = f"http://127.0.0.1:{free_port()}"
    store = _record(redis_url, namespace, "ses_far", "node-z", dead)
    store.zadd(f"{namespace}:sessions-of:default", {"ses_far": time.time() + 600})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = key_headers(client, "execute")
        opened = client.post("/v1/sessions", json={"language": "python"}, headers=headers)
        assert opened.status_code == 201, opened.text
        listed = client.get("/v1/sessions", headers=headers).json()
        assert [s["id"] for s in listed["sessions"]] == [opened.json()["id"]]
        assert listed["unreachable_nodes"] == ["node-z"]
        # Another tenant's listing asks nobody: node-z holds none of its sessions.
        other = client.get("/v1/sessions", headers=key_headers(client, "execute", tenant="t2"))
        assert other.json() == {"sessions": [], "unreachable_nodes": []}
    store.close()
