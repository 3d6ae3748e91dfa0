"""A real `companion serve` on a loopback port, with keys minted before it starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._services import free_port, wait_for_port

COMPANION = str(Path(sys.executable).parent / "companion")


@dataclass
class LiveServer:
    """A running service and the keys made for it."""

    url: str
    keys: dict[str, str]
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path


def mint_key(env: dict[str, str], tenant: str, scopes: str) -> str:
    """`companion keys create` against the server's data directory."""
    done = subprocess.run(
        [COMPANION, "keys", "create", "--tenant", tenant, "--scopes", scopes],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def start_server(data_dir: Path, **settings: str) -> LiveServer:
    """Start `companion serve` with `COMPANION_*` settings; keys for tenants acme and zeta."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env["COMPANION_DATA_DIR"] = str(data_dir)
    env.update({f"COMPANION_{name.upper()}": value for name, value in settings.items()})
    keys = {
        "admin": mint_key(env, "acme", "admin"),
        "acme": mint_key(env, "acme", "execute,tools,knowledge:read,knowledge:write"),
        "zeta": mint_key(env, "zeta", "execute,tools,knowledge:read,knowledge:write"),
    }
    port = free_port()
    log = data_dir / "serve.log"
    with log.open("wb") as sink:  # a file, not a pipe: an undrained pipe would stall the server
        process = subprocess.Popen(
            [COMPANION, "serve", "--port", str(port)], env=env, stdout=sink, stderr=sink
        )
    if not wait_for_port(port, timeout_s=60):
        process.kill()
        raise RuntimeError(f"companion serve did not start: {log.read_bytes()[-2000:]!r}")
    return LiveServer(f"http://127.0.0.1:{port}", keys, process, env, log)


def stop_server(server: LiveServer) -> bytes:
    """SIGTERM and wait; returns what it logged."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=60)
    return server.log.read_bytes()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("live"),
        execution_pool_size="2",
        rate_limit_default="100000/minute",
        rate_limit_execute="100000/minute",
    )
    try:
        yield server
    finally:
        stop_server(server)
