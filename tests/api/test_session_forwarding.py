"""Owner records and the relay's edge cases, on one real node and a real Redis (the relay between
live nodes is exercised in tests/multinode)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from companion.api import create_app
from companion.config import load_settings
from tests._services import free_port, wait_for_port
from tests.api.conftest import key_headers
from tests.telemetry._traced import new_traceparent, traced_service


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
    store.set(f"{namespace}:node:node-z", dead)  # alive by its heartbeat, yet not answering
    _record(redis_url, namespace, "ses_gone", "node-x", dead).close()  # no heartbeat: gone
    store.zadd(
        f"{namespace}:sessions-of:default",
        {"ses_far": time.time() + 600, "ses_gone": time.time() + 600},
    )
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


class _EchoOwner:
    """A real HTTP server standing in for the owner: answers what reached it, as JSON."""

    def __init__(self) -> None:
        import uvicorn

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            seen = {
                "raw_path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                "body": body.decode(errors="replace"),
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": orjson.dumps(seen)})

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        assert wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def owner(redis_url: str, namespace: str) -> Iterator[_EchoOwner]:
    echo = _EchoOwner()
    store = _record(redis_url, namespace, "ses_far", "node-z", "http://unused.invalid")
    store.set(f"{namespace}:node:node-z", echo.url)  # node-z's heartbeat names where it is
    yield echo
    echo.stop()
    store.close()


def test_a_call_is_relayed_as_the_client_encoded_it(client: TestClient, owner: _EchoOwner) -> None:
    headers = {
        **key_headers(client, "execute"),
        "Connection": "keep-alive, x-hop",
        "X-Hop": "secret for the next hop only",
        "X-Forwarded-For": "203.0.113.9",
    }
    response = client.put(
        "/v1/sessions/ses_far/files/a%3Fb%20%231.txt?x=1", content=b"payload", headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-companion-session-node"] == "node-z"
    assert response.headers["x-companion-node"] == "node-a"
    seen = response.json()
    # One file name, as encoded: not a path `files/a` with a query `b...`.
    assert seen["raw_path"] == "/v1/sessions/ses_far/files/a%3Fb%20%231.txt"
    assert seen["query"] == "x=1"
    assert seen["body"] == "payload"
    relayed = seen["headers"]
    assert relayed["authorization"] == headers["Authorization"]
    assert relayed["x-companion-forwarded-by"] == "node-a"
    assert "x-hop" not in relayed  # named in Connection: for one hop only
    assert relayed["x-forwarded-for"] == "testclient"  # the relay's own client, not the claim
    assert relayed["x-request-id"] == response.headers["x-request-id"]
    assert "traceparent" not in relayed  # none sent, and this node does not trace


def test_a_traced_node_relays_its_own_span_as_the_parent_of_the_owners(
    redis_url: str, namespace: str, owner: _EchoOwner
) -> None:
    """One trace across both nodes: the owner's request span is a child of the relaying node's
    request span, which continues the caller's (untraced, the caller's header passes as is:
    `test_a_call_is_relayed_as_the_client_encoded_it`)."""
    settings = {
        "execution_enabled": False,
        "redis_url": redis_url,
        "cache_namespace": namespace,
        "node_name": "node-a",
        "node_url": "http://127.0.0.1:1",
    }
    with traced_service(**settings) as node:
        header, trace_id, caller_span = new_traceparent()
        response = httpx.get(
            f"{node.url}/v1/sessions/ses_far",
            headers={"Authorization": f"Bearer {node.key('execute')}", "traceparent": header},
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-companion-session-node"] == "node-z"
        [request_span] = [span for span in node.trace(trace_id) if span.kind == "SERVER"]
    assert request_span.parent_span_id == caller_span
    relayed = response.json()["headers"]["traceparent"]
    assert relayed == f"00-{trace_id}-{request_span.span_id}-01"


def test_dot_segments_are_never_relayed(client: TestClient, owner: _EchoOwner) -> None:
    response = client.get(
        "/v1/sessions/ses_far/%2e%2e/%2e%2e/metrics", headers=key_headers(client, "execute")
    )
    assert response.headers.get("x-companion-session-node") is None
    assert response.status_code == 404


def test_a_body_over_the_limits_is_refused_while_relayed_not_a_500(
    client: TestClient, owner: _EchoOwner
) -> None:
    deep = b"[" * 200 + b"]" * 200
    response = client.post(
        "/v1/sessions/ses_far/execute",
        content=deep,
        headers={**key_headers(client, "execute"), "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_input"


def test_a_live_node_that_refuses_a_connection_is_unavailable_not_ended(
    client: TestClient, redis_url: str, namespace: str
) -> None:
    store = _record(redis_url, namespace, "ses_busy", "node-y", "http://unused.invalid")
    store.set(f"{namespace}:node:node-y", f"http://127.0.0.1:{free_port()}")
    response = client.get("/v1/sessions/ses_busy", headers=key_headers(client, "execute"))
    assert response.status_code == 503, response.text
    assert "node-y" in response.json()["detail"]
    assert store.get(f"{namespace}:session:ses_busy") is not None  # kept: the node is alive
    store.close()


def test_a_node_that_breaks_off_after_taking_the_call_is_a_502_not_a_retry(
    client: TestClient, redis_url: str, namespace: str
) -> None:
    """A cell sent to its node may have run there: never a 503 that clients send again."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def take_and_hang_up() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)  # the relayed request arrives...

    taker = threading.Thread(target=take_and_hang_up, daemon=True)
    taker.start()
    store = _record(redis_url, namespace, "ses_cut", "node-w", "http://unused.invalid")
    store.set(f"{namespace}:node:node-w", f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        response = client.post(
            "/v1/sessions/ses_cut/execute",
            json={"code": "x = 1"},
            headers=key_headers(client, "execute"),
        )
    finally:
        taker.join(timeout=10)
        listener.close()
        store.close()
    assert response.status_code == 502, response.text
    problem = response.json()
    assert problem["code"] == "upstream_failed"
    assert "may have run" in problem["detail"]


async def test_a_client_that_hangs_up_mid_body_aborts_the_relayed_request() -> None:
    from starlette.requests import ClientDisconnect

    from companion.api._session_relay import _request_body

    messages = iter(
        [{"type": "http.request", "body": b"half", "more_body": True}, {"type": "http.disconnect"}]
    )

    async def receive() -> Message:
        return next(messages)

    body = _request_body(receive)
    assert await anext(body) == b"half"
    with pytest.raises(ClientDisconnect):
        await anext(body)
