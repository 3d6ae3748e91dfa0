"""Execution rows: warm sandboxed runs against cold interpreter starts and a warm unsandboxed
worker, and throughput."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from companion.bench._case import Case, Operation, Target
from companion.bench._memory import tree_pss_bytes
from companion.bench._servers import ServiceProcess
from companion.config import load_settings
from companion.execution import ExecutionRequest, Executor, packages_dir
from companion.execution.sandbox.zygote import PACKAGE_ENV

__all__ = ["cases"]

FACTORIAL_PY = "import math\nprint(math.factorial(10))"
FACTORIAL_JS = "let f = 1; for (let i = 2; i <= 10; i++) f *= i; console.log(f)"
FACTORIAL_OUT = b"3628800\n"
# The data-science row: a 10,000-row DataFrame grouped and plotted; the chart comes back as PNG.
DATA_SCRIPT = """\
import numpy as np, pandas as pd
import matplotlib.pyplot as plt
rng = np.random.default_rng(7)
frame = pd.DataFrame({"group": rng.integers(0, 12, 10_000), "value": rng.normal(size=10_000)})
summary = frame.groupby("group").value.agg(["mean", "std"])
summary.plot(kind="bar", y="mean", yerr="std", legend=False)
print(len(summary))
"""
# What the cold peer adds to do the same work: find the packages, and render the open figure as
# the sandbox does at the end of a run.
DATA_PEER_PREFIX = "import sys\nsys.path.append({packages!r})\n"
DATA_PEER_SUFFIX = """\
import io
png = io.BytesIO()
plt.gcf().savefig(png, format="png")
assert png.getvalue().startswith(b"\\x89PNG")
"""
CLIENTS = 4
RUNS_PER_CLIENT = 10
_HEADER_BYTES = 4  # each message on the worker's pipes is a big-endian length, then the bytes

# The unsandboxed peer's loop: read a snippet, exec it with print captured, send the output back.
# It stops at end of input; an exception in a snippet ends it too, and the bench sees a short read.
WORKER_SOURCE = """\
import io, sys
source, sink, stdout = sys.stdin.buffer, sys.stdout.buffer, sys.stdout
while header := source.read(4):
    code = source.read(int.from_bytes(header, "big")).decode()
    sys.stdout = buffer = io.StringIO()
    try:
        exec(compile(code, "main.py", "exec"), {"__name__": "__main__"})
    finally:
        sys.stdout = stdout
    out = buffer.getvalue().encode()
    sink.write(len(out).to_bytes(4, "big") + out)
    sink.flush()
"""


class _WarmExecutor:
    """A started executor on a private event loop; calling it runs one request."""

    def __init__(self, request: ExecutionRequest, pool_size: int, data_pool_size: int = 0) -> None:
        self._loop = asyncio.new_event_loop()
        settings = load_settings(
            execution_pool_size=pool_size, execution_data_pool_size=data_pool_size
        )
        self._executor = Executor(settings)
        self._loop.run_until_complete(self._executor.start())
        self._request = request
        self()  # one warm-up run per zygote happens in calibration; this checks it works

    def __call__(self) -> object:
        result = self._loop.run_until_complete(self._executor.run(self._request))
        if result.status != "ok":
            raise RuntimeError(f"benchmark snippet failed: {result}")
        if self._request.code == DATA_SCRIPT and [r.mime_type for r in result.results] != [
            "image/png"
        ]:
            raise RuntimeError(f"the data-science snippet returned no chart: {result.results}")
        return result

    def sandbox_pss_bytes(self, pool: str) -> int:
        """Proportional memory of one zygote of `pool` with its template and children."""
        pids = self._executor.sandbox_pids()[pool]
        return tree_pss_bytes(pids[0])

    def concurrently(self, latencies_ns: list[int]) -> object:
        """CLIENTS clients, each running RUNS_PER_CLIENT snippets back to back; each run's
        latency as its client saw it is appended to `latencies_ns`."""

        async def client() -> None:
            for _ in range(RUNS_PER_CLIENT):
                started = time.perf_counter_ns()
                result = await self._executor.run(self._request)
                latencies_ns.append(time.perf_counter_ns() - started)
                if result.status != "ok":
                    raise RuntimeError(f"benchmark snippet failed: {result}")

        async def all_clients() -> None:
            await asyncio.gather(*(client() for _ in range(CLIENTS)))

        return self._loop.run_until_complete(all_clients())

    def close(self) -> None:
        """Stop the pool and the loop."""
        self._loop.run_until_complete(self._executor.close())
        self._loop.close()


class _WarmWorker:
    """The sandbox's own cost made visible: one long-lived, unsandboxed interpreter that receives
    the snippet over a pipe, `exec`s it and sends its output back, the same round trip as ours
    minus isolation, limits and the fork per run. Like our zygotes it keeps its imports warm."""

    def __init__(self) -> None:
        # The same interpreter, flags and clean environment as the cold peer and the sandbox.
        self._process = subprocess.Popen(
            [os.path.realpath(sys.executable), "-I", "-S", "-c", WORKER_SOURCE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": "/usr/bin"},
        )
        assert self._process.stdin is not None  # both PIPE: bound once, calls skip the None check
        assert self._process.stdout is not None
        self._to_worker, self._from_worker = self._process.stdin, self._process.stdout
        self._request = len(FACTORIAL_PY).to_bytes(_HEADER_BYTES, "big") + FACTORIAL_PY.encode()
        try:
            self()  # fails at setup, not mid-measurement, if the worker cannot answer
        except BaseException:
            self.close()
            raise

    def __call__(self) -> object:
        self._to_worker.write(self._request)
        self._to_worker.flush()
        header = self._from_worker.read(_HEADER_BYTES)
        out = self._from_worker.read(int.from_bytes(header, "big")) if header else b""
        if len(header) < _HEADER_BYTES or out != FACTORIAL_OUT:
            raise RuntimeError(f"warm worker answered {out!r}, exit code {self._process.poll()}")
        return out

    def close(self) -> None:
        """End the worker: end of input stops its loop; kill it if it does not exit promptly."""
        with contextlib.suppress(BrokenPipeError):  # a worker that died left a write unflushed
            self._to_worker.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._from_worker.close()


class _Concurrent:
    def __init__(self, warm: _WarmExecutor) -> None:
        self._warm = warm
        self._latencies_ns: list[int] = []

    def __call__(self) -> object:
        return self._warm.concurrently(self._latencies_ns)

    def note(self) -> str:
        """Each run's latency under the concurrent load, over every batch measured."""
        if not self._latencies_ns:
            return "no runs"
        cuts = statistics.quantiles(self._latencies_ns, n=100, method="inclusive")
        p50, p95, p99 = (cuts[i - 1] / 1e6 for i in (50, 95, 99))
        slowest = max(self._latencies_ns) / 1e6
        return (
            f"per run under {CLIENTS} clients ({len(self._latencies_ns)} runs): "
            f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms, max {slowest:.2f} ms"
        )

    def close(self) -> None:
        self._warm.close()


def _cold(argv: list[str]) -> Operation:
    def run() -> object:
        # A clean environment, as for the sandbox: node is 3-5x slower with the inherited one here.
        return subprocess.run(argv, capture_output=True, check=True, env={"PATH": "/usr/bin"})

    return run


def _cold_python() -> Operation:
    return _cold([os.path.realpath(sys.executable), "-I", "-S", "-c", FACTORIAL_PY])


def _cold_node() -> Operation:
    return _cold([shutil.which("node") or "node", "-e", FACTORIAL_JS])


def _cold_data_python() -> Operation:
    """A fresh interpreter running the data-science script: it pays the imports each time. Same
    environment as the sandbox's runs (one BLAS thread, Agg, a matplotlib cache already built)."""
    packages = str(packages_dir(load_settings()))
    script = DATA_PEER_PREFIX.format(packages=packages) + DATA_SCRIPT + DATA_PEER_SUFFIX
    cache = tempfile.mkdtemp(prefix="companion-bench-mpl-")
    env = {"PATH": "/usr/bin", **PACKAGE_ENV, "MPLCONFIGDIR": cache}
    argv = [os.path.realpath(sys.executable), "-I", "-S", "-c", script]

    def run() -> object:
        return subprocess.run(argv, capture_output=True, check=True, env=env)

    run()  # builds matplotlib's font cache once, as the sandbox's zygotes did at start
    return run


class _HttpExecute:
    """`POST /v1/execute` to a real `companion serve` on loopback, one request at a time over one
    kept-alive connection. The client is a raw socket sending the prepared request and reading
    the response by its length (as the HTTP group's load generator does): a client library's
    own parsing (`http.client` ~0.2 ms a request here) would be measured as the server's."""

    def __init__(self, request: ExecutionRequest) -> None:
        self._service = ServiceProcess.companion(
            COMPANION_EXECUTION_POOL_SIZE="2",
            COMPANION_EXECUTION_DATA_POOL_SIZE="0",
            COMPANION_RATE_LIMIT_EXECUTE="1000000/second",
        )
        try:
            token = _mint_key(self._service, "execute")
            body = request.model_dump_json(exclude_defaults=True).encode()
            head = (
                f"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            self._request = head.encode() + body
            self._socket = socket.create_connection(("127.0.0.1", self._service.port))
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
            self._wait_ready()
            self()
        except BaseException:
            self._service.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        ready = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        while True:
            self._socket.sendall(ready)
            status, _ = self._response()
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("companion serve did not get ready")
            time.sleep(0.1)  # real time: a real process starting its sandboxes

    def _response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return int(head[9:12]), body

    def _receive(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise RuntimeError("companion serve closed the connection")
        self._buffer += chunk

    def __call__(self) -> object:
        self._socket.sendall(self._request)
        status, body = self._response()
        if status != 200 or b'"status":"ok"' not in body:
            raise RuntimeError(f"POST /v1/execute answered {status}: {body[:300]!r}")
        return body

    def close(self) -> None:
        self._socket.close()
        self._service.close()


def _mint_key(service: ServiceProcess, scope: str) -> str:
    from companion.keys import KeyRing, open_key_store

    ring = KeyRing(open_key_store(load_settings(data_dir=service.data_dir)), cache_ttl_s=5)
    try:
        _, token = ring.create("bench", [scope], name="bench")
    finally:
        ring.close()
    return token


class _SandboxMemory:
    """Reports the proportional memory (PSS) of one zygote's process tree of a pool."""

    def __init__(self, pool: str) -> None:
        self._warm = _WarmExecutor(
            ExecutionRequest(language="python", code=FACTORIAL_PY),
            pool_size=1,
            data_pool_size=1 if pool == "preloaded" else 0,
        )
        self._pool = pool

    def __call__(self) -> float:
        return float(self._warm.sandbox_pss_bytes(self._pool))

    def close(self) -> None:
        self._warm.close()


def cases() -> list[Case]:
    """The execution rows of SPEC section 6."""
    python = ExecutionRequest(language="python", code=FACTORIAL_PY)
    javascript = ExecutionRequest(language="javascript", code=FACTORIAL_JS)
    data = ExecutionRequest(language="python", code=DATA_SCRIPT)
    rows = [
        Case(
            "execution",
            "Python snippet round trip, warm",
            ours=lambda: _WarmExecutor(python, pool_size=2),
            peer=_cold_python,
            peer_name="cold python3 -I -S",
            target=Target(max_ratio=0.2, max_median_ns=5e6),
            seed_figure="0.27 ms (unsandboxed exec)",
        ),
        Case(
            "execution",
            "Python snippet round trip, warm, against a warm unsandboxed worker",
            ours=lambda: _WarmExecutor(python, pool_size=2),
            peer=_WarmWorker,
            peer_name="warm unsandboxed exec worker",
            # No bound: the multiple is what isolation costs per run, reported, not targeted.
        ),
        Case(
            "execution",
            "Python snippet over HTTP: POST /v1/execute on loopback, one client, sequential",
            ours=lambda: _HttpExecute(python),
            peer=lambda: _WarmExecutor(python, pool_size=2),
            peer_name="the same run in process (Executor.run)",
            target=Target(max_added_ns=0.5e6),
        ),
        Case(
            "execution",
            "data-science snippet (10,000-row DataFrame, group, bar chart as PNG), warm",
            ours=lambda: _WarmExecutor(data, pool_size=1, data_pool_size=1),
            peer=_cold_data_python,
            peer_name="cold python3 running the same script",
            target=Target(max_ratio=0.1, max_median_ns=150e6),
        ),
        Case(
            "execution",
            "sandbox memory per zygote (PSS of its processes), packages preloaded",
            ours=lambda: _SandboxMemory("preloaded"),
            peer=lambda: _SandboxMemory("plain"),
            peer_name="a plain zygote (standard library only)",
            unit="bytes",
        ),
        Case(
            "execution",
            f"{CLIENTS} clients × {RUNS_PER_CLIENT} Python runs (≥ 200 runs/s ⇔ ≤ 200 ms)",
            ours=lambda: _Concurrent(_WarmExecutor(python, pool_size=0)),
            target=Target(max_median_ns=CLIENTS * RUNS_PER_CLIENT * 1e9 / 200),
        ),
    ]
    if shutil.which("node"):
        rows.insert(
            1,
            Case(
                "execution",
                "JavaScript snippet round trip, warm",
                ours=lambda: _WarmExecutor(javascript, pool_size=2),
                peer=_cold_node,
                peer_name="cold node -e",
                target=Target(max_ratio=0.05, max_median_ns=8e6),
                seed_figure="197 ms (node per call)",
            ),
        )
    return rows
