"""Real services for the client's tests: `companion serve` as a subprocess, the app under uvicorn on
a chosen port, and a TCP peer that answers badly (what a crashed node or a proxy does)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from tests._services import free_port, wait_for_port

__all__ = [
    "COMPANION",
    "SESSIONS_PER_TENANT",
    "BadPeer",
    "create_key",
    "nothing_listens",
    "served",
    "uvicorn_on",
]

COMPANION = str(Path(sys.executable).parent / "companion")
SESSIONS_PER_TENANT = 3
# Each key of the served service: its scopes and tenant.
_KEYS = {
    "execute": ("execute", "acme"),
    "tools": ("tools", "acme"),
    "other": ("execute", "globex"),
    "knowledge": ("knowledge:read,knowledge:write", "acme"),
    "reader": ("knowledge:read", "acme"),
    "agent": ("execute,tools,knowledge:read,knowledge:write", "acme"),
    "admin": ("admin", "initech"),
}


def create_key(env: dict[str, str], scopes: str, tenant: str = "acme") -> str:
    """A new API key, made by `companion keys create` in the data directory `env` names."""
    done = subprocess.run(
        [COMPANION, "keys", "create", "--tenant", tenant, "--scopes", scopes],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


@contextmanager
def served(data_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `companion serve` on a free port, and keys by name: `execute`, `tools` and
    `knowledge` (read and write) of tenant acme, `reader` (knowledge:read), `agent` (all of
    those), `other` (execute) of tenant globex, `admin` of tenant initech. A tenant may hold
    `SESSIONS_PER_TENANT` sessions; admin requests may ask for deep traces."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env["COMPANION_DATA_DIR"] = str(data_dir)
    env["COMPANION_EXECUTION_POOL_SIZE"] = "1"
    env["COMPANION_EXECUTION_DATA_POOL_SIZE"] = "1"
    env["COMPANION_EXECUTION_MAX_SESSIONS_PER_TENANT"] = str(SESSIONS_PER_TENANT)
    env["COMPANION_PROFILING_TRACE_REQUESTS"] = "true"
    keys = {name: create_key(env, scopes, tenant) for name, (scopes, tenant) in _KEYS.items()}
    port = free_port()
    process = subprocess.Popen(
        [COMPANION, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for_port(port, timeout_s=60), "companion serve did not listen"
        yield f"http://127.0.0.1:{port}", keys
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


@contextmanager
def uvicorn_on(app: FastAPI, port: int) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:`port` (uvicorn in a thread) until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        started = threading.Event()
        for _ in range(3000):
            if server.started or not thread.is_alive():
                break
            started.wait(0.01)  # real-time: waiting for the server thread to bind
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


class BadPeer:
    """A TCP server on a free port that reads each request whole, then sends `answer` (raw
    HTTP, or nothing) and hangs up, or with `silent` holds the connection without a word until
    the block ends; `connections` counts the requests that reached it."""

    def __init__(self, answer: bytes = b"", *, silent: bool = False) -> None:
        self.answer = answer
        self.silent = silent
        self.connections = 0
        self._done = threading.Event()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> BadPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)
        self._socket.close()

    def _serve(self) -> None:
        # real-time: accept() wakes every 50 ms to see whether the block has ended (closing the
        # socket from another thread does not interrupt it on Linux).
        self._socket.settimeout(0.05)
        with contextlib.suppress(OSError):  # the socket closed: the test is over
            while not self._done.is_set():
                try:
                    connection, _ = self._socket.accept()
                except TimeoutError:
                    continue
                with connection:
                    connection.settimeout(5)
                    _read_request(connection)
                    self.connections += 1
                    if self.silent:
                        self._done.wait(30)  # real-time: a peer that never answers
                    elif self.answer:
                        connection.sendall(self.answer)


def _read_request(connection: socket.socket) -> None:
    """Read one request whole: its head, then as many body bytes as its content-length says.

    Hanging up with part of the body unread resets the connection (RST, not FIN), and the
    client would then see "connection reset" instead of the answer under test."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            return
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    remaining = int(length.group(1)) - len(body) if length else 0
    while remaining > 0:
        chunk = connection.recv(min(remaining, 65536))
        if not chunk:
            return
        remaining -= len(chunk)


def nothing_listens() -> str:
    """The URL of a loopback port nobody listens on."""
    return f"http://127.0.0.1:{free_port()}"
