"""Execution rows: warm sandboxed runs against cold interpreter starts, and throughput."""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time

from companion.bench._case import Case, Operation, Target
from companion.config import load_settings
from companion.execution import ExecutionRequest, Executor

__all__ = ["cases"]

FACTORIAL_PY = "import math\nprint(math.factorial(10))"
FACTORIAL_JS = "let f = 1; for (let i = 2; i <= 10; i++) f *= i; console.log(f)"
CLIENTS = 4
RUNS_PER_CLIENT = 10


class _WarmExecutor:
    """A started executor on a private event loop; calling it runs one request."""

    def __init__(self, request: ExecutionRequest, pool_size: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._executor = Executor(load_settings(execution_pool_size=pool_size))
        self._loop.run_until_complete(self._executor.start())
        self._request = request
        self()  # one warm-up run per zygote happens in calibration; this checks it works

    def __call__(self) -> object:
        result = self._loop.run_until_complete(self._executor.run(self._request))
        if result.status != "ok":
            raise RuntimeError(f"benchmark snippet failed: {result}")
        return result

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
        return (
            f"per run under {CLIENTS} clients ({len(self._latencies_ns)} runs): "
            f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms"
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


def cases() -> list[Case]:
    """The execution rows of SPEC section 6."""
    python = ExecutionRequest(language="python", code=FACTORIAL_PY)
    javascript = ExecutionRequest(language="javascript", code=FACTORIAL_JS)
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
