"""Real service processes for the HTTP and memory rows: `companion serve` and a bare uvicorn app."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

__all__ = ["ServiceProcess", "free_port"]

_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ServiceProcess:
    """One uvicorn process on loopback, started on construction and stopped by `close`."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="companion-bench-"))
        full_env = {**os.environ, "COMPANION_DATA_DIR": str(self.data_dir), **(env or {})}
        argv = [part.replace("{port}", str(self.port)) for part in argv]
        self.process = subprocess.Popen(
            argv, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                self.close()
                raise RuntimeError(f"{argv[0]} did not start: {stderr[-2000:]}")
            time.sleep(0.05)  # real-time: waiting on a real process to listen

    @classmethod
    def companion(cls, **env: str) -> ServiceProcess:
        """`companion serve` with its embedded defaults (sandbox pool included) and `env` on top."""
        binary = shutil.which("companion", path=str(Path(sys.executable).parent)) or "companion"
        extra = {"COMPANION_LOG_LEVEL": "warning", **env}
        return cls([binary, "serve", "--port", "{port}"], env=extra)

    @classmethod
    def bare(cls) -> ServiceProcess:
        """uvicorn serving `companion.bench._bare_app:app`, one worker."""
        argv = [sys.executable, "-m", "uvicorn", "companion.bench._bare_app:app"]
        argv += ["--port", "{port}", "--log-level", "warning", "--no-access-log"]
        return cls(argv)

    def rss_bytes(self) -> int:
        """Resident memory of the service process itself (not its sandbox children)."""
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def children_rss_bytes(self) -> int:
        """Resident memory of the processes it started (the sandbox zygotes), summed."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        total = 0
        for child in children:
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def close(self) -> None:
        """Terminate the process and wait for it; remove its data directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)
