"""Request heads are bounded by `COMPANION_HTTP_MAX_HEADER_BYTES`: 431 beyond, never read whole.

Before the limit, a 64 MiB header was read whole (seconds of CPU, tens of MB) and answered 200.
Over a real `companion serve` on loopback, with raw sockets so nothing trims what is sent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import NamedTuple

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.bench._servers import ServiceProcess
from companion.config import load_settings

LIMIT = 16_384


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceProcess]:
    service = ServiceProcess.companion(
        COMPANION_HTTP_MAX_HEADER_BYTES=str(LIMIT), COMPANION_EXECUTION_ENABLED="false"
    )
    try:
        yield service
    finally:
        service.close()


class Exchange(NamedTuple):
    """The responses read back, and how much of the request the server let through."""

    answers: list[tuple[int, bytes]]
    sent_bytes: int


def _exchange(port: int, request: bytes, responses: int = 1) -> Exchange:
    """Send `request` (from a thread: the server may stop reading it) and read `responses` back."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:

        def send() -> None:
            nonlocal sent
            view = memoryview(request)
            with contextlib.suppress(OSError):  # refused mid-way: the reset is expected
                while sent < len(request):
                    sent += sock.send(view[sent : sent + 65536])

        sender = threading.Thread(target=send)
        sender.start()
        received = b""
        answers: list[tuple[int, bytes]] = []
        with contextlib.suppress(ConnectionResetError):
            while len(answers) < responses:
                head_end = received.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = received[:head_end].decode().lower()
                    length = int(head.split("content-length: ")[1].split("\r\n")[0])
                    end = head_end + 4 + length
                    if len(received) >= end:
                        answers.append((int(head.split()[1]), received[head_end + 4 : end]))
                        received = received[end:]
                        continue
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        with contextlib.suppress(OSError):  # unblocks the sender, unless the server reset it
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=30)
    return Exchange(answers, sent)


def _get(header_bytes: int) -> bytes:
    return b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * header_bytes + b"\r\n\r\n"


@pytest.mark.slow
def test_a_64_mib_header_is_refused_without_being_read(server: ServiceProcess) -> None:
    refused = _exchange(server.port, _get(64 << 20))
    [(status, body)] = refused.answers
    assert status == 431
    problem = json.loads(body)
    assert problem["code"] == "headers_too_large"
    assert problem["details"] == {"http_max_header_bytes": LIMIT}
    # The server stopped reading at the limit plus one read: the rest of the 64 MiB never left
    # this side (loopback socket buffers hold a few MiB at most).
    assert refused.sent_bytes < 16 << 20
    [(status, _)] = _exchange(server.port, _get(100)).answers
    assert status == 200  # the service is none the worse


@pytest.mark.slow
@pytest.mark.parametrize("header_bytes", [LIMIT, 4 * LIMIT, 1 << 20])
def test_every_head_over_the_limit_is_431_and_under_it_passes(
    server: ServiceProcess, header_bytes: int
) -> None:
    [(status, body)] = _exchange(server.port, _get(header_bytes)).answers
    assert status == 431
    assert json.loads(body)["status"] == 431
    [(status, _)] = _exchange(server.port, _get(LIMIT - 200)).answers
    assert status == 200


@pytest.mark.slow
def test_bodies_never_count_as_head_even_pipelined(server: ServiceProcess) -> None:
    body = b"x" * (8 * LIMIT)
    post = b"POST /livez HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    answers = _exchange(server.port, post + _get(100) + post + _get(100), responses=4).answers
    assert [status for status, _ in answers] == [405, 200, 405, 200]


def test_the_app_itself_answers_431_under_any_server(tmp_path: object) -> None:
    settings = load_settings(execution_enabled=False, http_max_header_bytes=LIMIT)
    with TestClient(create_app(settings)) as client:
        refused = client.get("/livez", headers={"X-Big": "a" * LIMIT})
        assert refused.status_code == 431
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["request_id"] == refused.headers["x-request-id"]
        assert client.get("/livez", headers={"X-Big": "a" * (LIMIT - 200)}).status_code == 200
