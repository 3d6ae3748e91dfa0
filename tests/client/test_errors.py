"""Problem documents of a real service become the client's error classes (by `type`, then by
status); transport failures become `ConnectionFailed` and `Timeout`; the CLI prints them as before."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from companion_client import (
    NO_RETRIES,
    APIError,
    BadRequest,
    Client,
    CollectionExists,
    CompanionClientError,
    ConnectionFailed,
    Forbidden,
    IncompleteStream,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    SessionCapacityReached,
    SessionEnded,
    SessionNotFound,
    Timeout,
    TransportError,
    Unauthorized,
    ValidationFailed,
    error_from_problem,
)
from fastapi import FastAPI

from companion.api import create_app
from companion.config import load_settings
from tests._services import free_port
from tests.client._service import COMPANION, BadPeer, nothing_listens, uvicorn_on

Service = tuple[str, FastAPI]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The app (no sandbox) under uvicorn, with a small body limit for 413s."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("errors"),
        execution_enabled=False,
        max_body_bytes=4096,
    )
    app = create_app(settings)
    with uvicorn_on(app, free_port()) as url:
        yield url, app


def _key(app: FastAPI, *scopes: str, tenant: str = "acme") -> str:
    _, token = app.state.companion.keys.create(tenant, list(scopes))
    return str(token)


def test_each_status_becomes_its_class_with_the_problem_fields(service: Service) -> None:
    url, app = service
    stranger = Client(url, "cmp_0123456789ab_" + "0" * 48)
    with stranger, pytest.raises(Unauthorized) as unauthorized:
        stranger.list_collections()
    error = unauthorized.value
    assert (error.status, error.code, error.title) == (401, "unauthorized", "Unauthorized")
    assert error.type == "urn:companion:error:unauthorized"
    assert error.instance == "/v1/collections"
    assert error.request_id
    assert error.headers["www-authenticate"].startswith("Bearer")
    assert error.problem["detail"] == str(error) == error.detail

    with Client(url, _key(app, "knowledge:read", "knowledge:write")) as client:
        with pytest.raises(Forbidden) as forbidden:
            client.list_tools()
        assert "tools" in str(forbidden.value)
        with pytest.raises(NotFound) as unknown_route:
            client.request("GET", "/v1/nowhere")
        assert type(unknown_route.value) is NotFound
        assert isinstance(unknown_route.value, LookupError)
        with pytest.raises(BadRequest) as malformed:
            client.request(
                "POST",
                "/v1/collections",
                content=b'{"name": ',
                headers={"content-type": "application/json"},
            )
        assert (malformed.value.status, isinstance(malformed.value, ValueError)) == (400, True)
        with pytest.raises(ValidationFailed) as invalid:
            client.search("anything", "q", k=0)
        assert invalid.value.status == 422
        assert [(e.pointer, e.location) for e in invalid.value.errors] == [("/k", "body")]
        client.create_collection("taken")
        with pytest.raises(CollectionExists) as taken:
            client.create_collection("taken")
        assert (taken.value.status, taken.value.code) == (409, "collection_exists")
        with pytest.raises(PayloadTooLarge) as large:
            client.add_documents("taken", [{"text": "x" * 10_000}])
        assert large.value.status == 413


def test_a_refused_stream_raises_the_services_problem(service: Service) -> None:
    url, app = service
    client = Client(url, _key(app, "execute"), retry=NO_RETRIES)
    with client, pytest.raises(ServiceUnavailable) as disabled:
        list(client.run_stream("print(1)"))
    assert disabled.value.code == "sandbox_unavailable"
    assert "disabled" in str(disabled.value)


def test_the_type_decides_before_the_status() -> None:
    ended = error_from_problem(404, {"type": "urn:companion:error:session_ended", "detail": "x"})
    assert type(ended) is SessionEnded
    assert (ended.status, ended.code, str(ended)) == (404, "session_ended", "x")
    by_code = error_from_problem(404, {"code": "session_not_found"})  # no `type`: its `code`
    assert type(by_code) is SessionNotFound
    assert type(error_from_problem(404, {"type": "urn:companion:error:brand_new"})) is NotFound
    assert type(error_from_problem(503, {"type": "urn:companion:error:session_capacity"})) is (
        SessionCapacityReached
    )
    assert type(error_from_problem(418, {"title": "teapot"})) is APIError
    assert type(error_from_problem(507, {})) is ServerError
    assert type(error_from_problem(429, {}, retry_after_s=3.0)) is RateLimited
    assert error_from_problem(429, {}, retry_after_s=3.0).retry_after_s == 3.0
    assert str(error_from_problem(500, {})) == "HTTP 500"
    traced = error_from_problem(500, {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
    assert traced.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_proxys_html_page_becomes_a_server_error() -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    answer = (
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: "
        + str(len(page)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + page
    )
    with (
        BadPeer(answer) as peer,
        Client(peer.url, retry=NO_RETRIES) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.live()
    assert (caught.value.status, caught.value.code) == (502, None)
    assert str(caught.value) == page.decode()


def test_transport_failures_are_the_clients_own() -> None:
    url = nothing_listens()
    with Client(url, retry=NO_RETRIES) as client, pytest.raises(ConnectionFailed) as refused:
        client.live()
    assert str(refused.value).startswith(f"{url}/livez: ConnectError: ")
    assert isinstance(refused.value, ConnectionError)
    assert isinstance(refused.value, TransportError)
    with (
        BadPeer(silent=True) as peer,
        Client(peer.url, timeout_s=0.3, retry=NO_RETRIES) as client,
        pytest.raises(Timeout) as slow,
    ):
        client.live()
    assert isinstance(slow.value, TimeoutError)
    assert "ReadTimeout" in str(slow.value)
    with (
        BadPeer() as peer,
        Client(peer.url, retry=NO_RETRIES) as client,
        pytest.raises(ConnectionFailed, match="RemoteProtocolError"),
    ):
        client.live()
    assert issubclass(ConnectionFailed, CompanionClientError)


def test_a_stream_that_breaks_after_it_began_is_incomplete() -> None:
    """Not `ConnectionFailed`: the run was sent, and may have happened."""
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    event = b'event: stdout\ndata: {"text": "a"}\n\n'
    chunk = f"{len(event):x}\r\n".encode() + event + b"\r\n"
    for answer, why in [
        (head + chunk, "the stream broke before the run's result: .*RemoteProtocolError"),
        (head + chunk + b"0\r\n\r\n", "the stream ended before the run's result"),
    ]:
        with BadPeer(answer) as peer, Client(peer.url, retry=NO_RETRIES) as client:
            events = client.run_stream("print('a')")
            assert next(events).text == "a"
            with pytest.raises(IncompleteStream, match=why) as broken:
                next(events)
            assert not isinstance(broken.value, ConnectionFailed)


def _cli(*args: str, key: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    return subprocess.run(
        [COMPANION, *args],
        env={**env, "COMPANION_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_prints_client_errors_with_its_exit_codes(service: Service, tmp_path: Path) -> None:
    url, app = service
    reader = _key(app, "knowledge:read")
    missing = _cli("search", "comets", "--collection", "none", "--url", url, key=reader)
    assert (missing.returncode, missing.stderr) == (
        1,
        "companion: collection 'none' does not exist\n",
    )
    empty = _cli("search", " ", "--collection", "none", "--url", url, key=reader)
    assert empty.returncode == 2  # bad input, as before: 400 and 422 exit 2
    assert empty.stderr.startswith("companion: ")
    script = tmp_path / "x.py"
    script.write_text("print(1)")
    nowhere = nothing_listens()
    down = _cli("exec", str(script), "--url", nowhere, key=reader)
    assert down.returncode == 1
    assert down.stderr.startswith(f"companion: {nowhere}/v1/execute: ConnectError: ")
    refused = _cli("exec", str(script), "--file", str(tmp_path / "absent.csv"), "--url", url)
    assert refused.returncode == 2
    assert refused.stderr == f"companion: {tmp_path / 'absent.csv'}: not a regular file\n"
