"""Real Redis and PostgreSQL for tests: the configured server, or a private one started for the session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str) -> None:
    """Skip locally, fail in CI: a CI run must never silently skip real-service tests."""
    if IN_CI:
        pytest.fail(f"{what} is required when CI=true", pytrace=False)
    pytest.skip(what)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 10.0) -> bool:
    """Poll until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.02)  # real-time: waiting on a real process to listen
    return False


@dataclass
class RedisServer:
    """A private `redis-server` on its own port that a test may stop and start again."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Connection URL (database 0 of the private server)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart on the same port) and wait until it accepts connections."""
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server binary")
            return
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--daemonize", "no", "--logfile", ""]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Kill the server (like a crash: no graceful shutdown)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def redis_is_up(url: str) -> bool:
    """True when a Redis answers PING at `url`."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@dataclass
class PostgresCluster:
    """A private PostgreSQL cluster (initdb + pg_ctl) for machines without a server."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="companion-pg-")))

    @property
    def url(self) -> str:
        """Connection URL of the private cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def binaries() -> Path | None:
        """Directory holding initdb and pg_ctl, if PostgreSQL is installed."""
        found = shutil.which("initdb")
        if found:
            return Path(found).parent
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
        return candidates[0].parent if candidates else None

    def start(self) -> None:
        """initdb and start on a free port (as root, PostgreSQL refuses to run: not supported)."""
        bindir = self.binaries()
        if bindir is None or os.geteuid() == 0:
            unavailable("a PostgreSQL server (none reachable, and no usable initdb)")
            return
        data = self.directory / "data"
        subprocess.run(
            [bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
        )
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
        subprocess.run(
            [bindir / "pg_ctl", "-D", data, "-o", options, "-w", "start", "-l", data / "log"],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        """Stop the cluster and remove its files."""
        bindir = self.binaries()
        if bindir is not None and (self.directory / "data").exists():
            subprocess.run(
                [bindir / "pg_ctl", "-D", self.directory / "data", "-m", "immediate", "stop"],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(self.directory, ignore_errors=True)


def postgres_is_up(url: str) -> bool:
    """True when a PostgreSQL answers `SELECT 1` at `url`."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False
