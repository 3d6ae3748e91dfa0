"""HTTP and service rows: real uvicorn processes on loopback, ours next to a bare FastAPI endpoint.

Both servers run one worker. Ours is `companion serve` with its embedded defaults (the sandbox pool
included), serving `POST /v1/tools/add/invoke` from the tool cache behind the key check, the rate
limiter and the metrics middleware; the peer is FastAPI alone answering the same JSON. The load
generator runs in this process, so on a 2-core machine it competes with the server for CPU: the
bare endpoint, being faster, suffers more from that, which makes the ratio conservative for us.
"""

from __future__ import annotations

import atexit

import orjson

from companion.bench._case import Case, Operation, Target
from companion.bench._load import LoadResult, run_load
from companion.bench._servers import ServiceProcess

__all__ = ["CONNECTIONS", "cases"]

_GROUP = "http"
CONNECTIONS = 8
_BURST_S = 0.5
_PATH = "/v1/tools/add/invoke"
_BODY = orjson.dumps({"arguments": {"a": 5, "b": 3}})
# Per-second rate windows keep the limiter's per-key bookkeeping short; it still runs per request.
_OURS_ENV = {"COMPANION_RATE_LIMIT_DEFAULT": "1000000/second"}


class _Pair:
    """Our service and the bare peer, started once and shared by the group's rows."""

    def __init__(self) -> None:
        self.ours = ServiceProcess.companion(**_OURS_ENV)
        self.bare = ServiceProcess.bare()
        self.idle_rss = (self.ours.rss_bytes(), self.bare.rss_bytes())
        self.children_rss = self.ours.children_rss_bytes()
        self.headers = {"Authorization": f"Bearer {self._mint_key()}"}
        for side in ("ours", "bare"):  # warm-up: connections, caches, the first key check
            self.burst(side, duration_s=0.2)

    def _mint_key(self) -> str:
        from companion.config import load_settings
        from companion.keys import KeyRing, open_key_store

        ring = KeyRing(open_key_store(load_settings(data_dir=self.ours.data_dir)), cache_ttl_s=5)
        try:
            _, token = ring.create("bench", ["tools"], name="bench")
        finally:
            ring.close()
        return token

    def burst(self, side: str, duration_s: float = _BURST_S) -> LoadResult:
        """One load burst against `side` ("ours" or "bare")."""
        server = self.ours if side == "ours" else self.bare
        headers = self.headers if side == "ours" else {}
        return run_load(
            server.port, _PATH, body=_BODY, headers=headers,
            connections=CONNECTIONS, duration_s=duration_s,
        )  # fmt: skip

    def close(self) -> None:
        """Stop both servers (idempotent)."""
        self.ours.close()
        self.bare.close()


class _Shared:
    """Starts the pair on first use; stops it when every side that will use it has released it."""

    def __init__(self, users: int) -> None:
        self._users = users
        self._pair: _Pair | None = None

    def acquire(self) -> _Pair:
        """The running pair."""
        if self._pair is None:
            self._pair = _Pair()
            atexit.register(self._pair.close)  # a run cut short still stops the servers
        return self._pair

    def release(self) -> None:
        """One side is done."""
        self._users -= 1
        if self._users <= 0 and self._pair is not None:
            self._pair.close()
            self._pair = None


class _Side:
    """One side of an HTTP row: each call is a load burst; `figure` picks what it reports."""

    def __init__(self, shared: _Shared, side: str, figure: str) -> None:
        self._shared = shared
        self._pair = shared.acquire()
        self._side = side
        self._figure = figure
        self._rps: list[float] = []
        self._p99_ns: list[float] = []

    def __call__(self) -> float:
        if self._figure == "rss":
            ours_rss, bare_rss = self._pair.idle_rss
            return float(ours_rss if self._side == "ours" else bare_rss)
        result = self._pair.burst(self._side)
        self._rps.append(result.requests_per_s)
        self._p99_ns.append(result.percentile_ns(0.99))
        if self._figure == "p99":
            return result.percentile_ns(0.99)
        return result.elapsed_ns / max(result.requests, 1)

    def note(self) -> str:
        """Throughput and p99 of the bursts, or what else the memory figure leaves out."""
        name = "ours" if self._side == "ours" else "bare"
        if self._figure == "rss":
            if self._side == "bare":
                return "peer: uvicorn + FastAPI with one route"
            return f"sandbox zygotes (separate processes) {self._pair.children_rss / 2**20:.0f} MiB"
        rps = sorted(self._rps)[len(self._rps) // 2]
        p99_ms = sorted(self._p99_ns)[len(self._p99_ns) // 2] / 1e6
        return f"{name} {rps:,.0f} req/s, p99 {p99_ms:.1f} ms"

    def close(self) -> None:
        """Release the shared servers."""
        self._shared.release()


def cases() -> list[Case]:
    """Service memory at idle, then cached tool invokes under load on one worker."""
    shared = _Shared(users=6)  # two sides for each of the three rows

    def _side(side: str, figure: str) -> Operation:
        return _Side(shared, side, figure)

    return [
        Case(
            _GROUP,
            "service RSS at idle (companion serve, no embedding model)",
            ours=lambda: _side("ours", "rss"),
            peer=lambda: _side("bare", "rss"),
            peer_name="bare FastAPI app on uvicorn",
            target=Target(max_median_ns=80 * 2**20),
            seed_figure="21 MB (no server)",
            unit="bytes",
        ),
        Case(
            _GROUP,
            f"cached tool invoke, 1 worker, {CONNECTIONS} connections: time per request "
            "(1 / throughput)",
            ours=lambda: _side("ours", "throughput"),
            peer=lambda: _side("bare", "throughput"),
            peer_name="bare FastAPI endpoint, same JSON",
            target=Target(max_ratio=2.0),  # ≤ 2× its time per request ⇔ ≥ 0.5× its requests/s
            reported=True,
        ),
        Case(
            _GROUP,
            f"cached tool invoke, 1 worker, {CONNECTIONS} connections: p99 latency",
            ours=lambda: _side("ours", "p99"),
            peer=lambda: _side("bare", "p99"),
            peer_name="bare FastAPI endpoint, same JSON",
            target=Target(max_median_ns=20e6),
            reported=True,
        ),
    ]
