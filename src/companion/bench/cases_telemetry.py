"""Benchmark rows of `companion.telemetry`: what tracing costs a request, off and on, in one run.

Off is the default, and meant to cost nothing: the request middleware is not installed, the tool
registry's `acall` is the plain method, and the only code left on a path is a search's or a
run's hooks, which hand back the shared no-op span. The first row times those hooks around a
BM25 search next to the bare `kb.search` (the same queries in the same order). On, each request
is a server span and each tool call or search a child span, exported in batches over OTLP/HTTP
to a receiver on loopback (in this process; it answers without decoding, as a sink): the other
rows send the same request through the ASGI app with tracing on and with it off.

Requests go straight into the ASGI app (its lifespan run, no HTTP server), so the rows show what
the service adds, not the noise of sockets.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import orjson

from companion.bench._case import Case, Cycling, Target
from companion.bench.cases_search import generate_corpus
from companion.telemetry import NO_TELEMETRY, OtlpReceiver, record_search, search_span

__all__ = ["cases"]

_GROUP = "telemetry"
_TENANT = "bench"
_COLLECTION = "notes"
_PASSAGES = 2_000
_QUICK_PASSAGES = 500
_K = 10
_BURST_REQUESTS = 300
# Per-second windows keep the limiter out of the way; it still runs on every request.
_SETTINGS: dict[str, Any] = {
    "execution_enabled": False,
    "knowledge_embedder": "none",
    "rate_limit_default": "1000000/second",
    # Searches cycle through the same queries: with the result cache they would be cache hits.
    "knowledge_cache_ttl_s": 1e-9,
}


class _Apps:
    """Two services of the same build, tracing off and on, with the same documents and keys."""

    def __init__(self, passages: int) -> None:
        from companion.api import create_app
        from companion.config import load_settings

        self.loop = asyncio.new_event_loop()
        self.root = Path(tempfile.mkdtemp(prefix="companion-bench-telemetry-"))
        self.receiver = OtlpReceiver(decode=False).start()
        self._lifespans: list[AbstractAsyncContextManager[Any]] = []
        texts, self.queries = generate_corpus(passages)
        self.apps: dict[str, Any] = {}
        self.headers: dict[str, list[tuple[bytes, bytes]]] = {}
        for side, extra in (("off", {}), ("on", {"telemetry_otlp_endpoint": self.receiver.url})):
            settings = load_settings(data_dir=self.root / side, **_SETTINGS, **extra)
            app = create_app(settings)
            lifespan = app.router.lifespan_context(app)
            self.loop.run_until_complete(lifespan.__aenter__())
            self._lifespans.append(lifespan)
            state = app.state.companion
            _, token = state.keys.create(_TENANT, ["tools", "knowledge:read", "knowledge:write"])
            self.apps[side] = app
            self.headers[side] = [
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
            ]
            self.loop.run_until_complete(self._fill(state.knowledge, texts))
        self._warm_up()

    async def _fill(self, knowledge: Any, texts: Sequence[str]) -> None:
        await knowledge.ensure_collection(_TENANT, _COLLECTION)
        documents = [{"id": f"d{n}", "text": text} for n, text in enumerate(texts)]
        for start in range(0, len(documents), 500):
            await knowledge.upsert(_TENANT, _COLLECTION, documents[start : start + 500])

    def _warm_up(self) -> None:
        """First requests fill caches, pools and the exporter's connection: untimed, as the
        runner's calibration would otherwise take one of them for the typical cost."""
        invoke = orjson.dumps({"arguments": {"a": 5, "b": 3}})
        for side in self.apps:
            for _ in range(200):
                self.request(side, "/v1/tools/add/invoke", invoke)
            for query in self.queries[:50]:
                self.request(side, f"/v1/collections/{_COLLECTION}/search", _search_body(query))

    def knowledge(self) -> Any:
        """The knowledge base of the service with tracing off."""
        return self.apps["off"].state.companion.knowledge

    def request(self, side: str, path: str, body: bytes) -> int:
        """One POST through `side`'s ASGI app; its status."""
        return self.loop.run_until_complete(_post(self.apps[side], path, body, self.headers[side]))

    def close(self) -> None:
        """Stop both services (flushing the traced one's spans) and the receiver."""
        for lifespan in reversed(self._lifespans):
            self.loop.run_until_complete(lifespan.__aexit__(None, None, None))
        self._lifespans.clear()
        self.receiver.close()
        self.loop.close()
        shutil.rmtree(self.root, ignore_errors=True)


async def _post(app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """Send one request into `app` as a server would, answer discarded; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


class _Shared:
    """Builds the two services on first use; stops them when every side has been closed."""

    def __init__(self, users: int, passages: int) -> None:
        self._users = users
        self._passages = passages
        self._apps: _Apps | None = None

    def acquire(self) -> _Apps:
        """The running services."""
        if self._apps is None:
            self._apps = _Apps(self._passages)
            atexit.register(self._apps.close)  # a run cut short still stops them
        return self._apps

    def release(self) -> None:
        """One side is done."""
        self._users -= 1
        if self._users <= 0 and self._apps is not None:
            atexit.unregister(self._apps.close)
            self._apps.close()
            self._apps = None


class _Burst:
    """One side of an on/off row: each call sends `requests` requests (cycling through the
    inputs) and returns their median time; the runner interleaves a few bursts of each side.

    Bursts, not single timed calls: the exporter's thread encodes and posts a batch every few
    seconds or 512 spans, and a row timed call by call would take a request that met one for
    the typical cost when it calibrates.
    """

    def __init__(
        self,
        shared: _Shared,
        side: str,
        inputs: Sequence[bytes],
        run: Callable[[_Apps, bytes], object],
    ) -> None:
        self._shared = shared
        self._side = side
        self._apps = shared.acquire()
        self._inputs = list(inputs)
        self._run = run
        self._p95_ns: list[float] = []

    def __call__(self) -> float:
        times: list[int] = []
        for index in range(_BURST_REQUESTS):
            item = self._inputs[index % len(self._inputs)]
            started = time.perf_counter_ns()
            self._run(self._apps, item)
            times.append(time.perf_counter_ns() - started)
        times.sort()
        self._p95_ns.append(times[int(0.95 * (len(times) - 1))])
        return float(statistics.median(times))

    def note(self) -> str:
        """The median p95 of the bursts."""
        return f"p95 tracing {self._side} {statistics.median(self._p95_ns) / 1000:.0f} µs"

    def close(self) -> None:
        """Release the services."""
        self._shared.release()


class _Side(Cycling[bytes]):
    """One side of a row: one call per input; the shared services are released on `close`."""

    def __init__(
        self, shared: _Shared, inputs: Sequence[bytes], run: Callable[[_Apps, bytes], object]
    ) -> None:
        self._shared = shared
        apps = shared.acquire()
        super().__init__(inputs, lambda body: run(apps, body))

    def close(self) -> None:
        """Release the services."""
        self._shared.release()


def _search_body(query: str) -> bytes:
    return orjson.dumps({"query": query, "mode": "bm25", "k": _K})


def cases(quick: bool = False) -> list[Case]:
    """The off hooks next to no hooks; tool invokes and searches with tracing on next to off."""
    passages = _QUICK_PASSAGES if quick else _PASSAGES
    shared = _Shared(users=6, passages=passages)
    search_path = f"/v1/collections/{_COLLECTION}/search"
    invoke_path = "/v1/tools/add/invoke"
    invoke_body = [orjson.dumps({"arguments": {"a": 5, "b": 3}})]

    def queries() -> list[bytes]:
        return [query.encode() for query in shared.acquire().queries]

    def hooked_search(apps: _Apps, query: bytes) -> object:
        # Exactly what `POST /v1/collections/{c}/search` adds around the search when off.
        async def search() -> object:
            with search_span(NO_TELEMETRY, mode="bm25", k=_K, filtered=False) as span:
                result = await apps.knowledge().search(
                    _TENANT, _COLLECTION, query.decode(), mode="bm25", k=_K
                )
                record_search(span, result, collection=_COLLECTION)
            return result

        return apps.loop.run_until_complete(search())

    def bare_search(apps: _Apps, query: bytes) -> object:
        # The same coroutine around the same call, without the hooks.
        async def search() -> object:
            return await apps.knowledge().search(
                _TENANT, _COLLECTION, query.decode(), mode="bm25", k=_K
            )

        return apps.loop.run_until_complete(search())

    def through(side: str, path: str, body_of: Callable[[bytes], bytes]) -> Callable[..., object]:
        def run(apps: _Apps, item: bytes) -> object:
            status = apps.request(side, path, body_of(item))
            if status != 200:
                raise RuntimeError(f"{path} answered {status} with tracing {side}")
            return status

        return run

    def search_bodies() -> list[bytes]:
        return [_search_body(query.decode()) for query in queries()]

    def same(body: bytes) -> bytes:
        return body

    size = f"{passages:,} passages"
    return [
        Case(
            _GROUP,
            f"BM25 search ({size}), tracing off: the route's hooks around kb.search",
            ours=lambda: _Side(shared, queries(), hooked_search),
            peer=lambda: _Side(shared, queries(), bare_search),
            peer_name="the same kb.search with no telemetry code",
            target=Target(max_ratio=1.03),
        ),
        Case(
            _GROUP,
            "cached tool invoke through the ASGI app, tracing on (OTLP/HTTP to loopback)",
            ours=lambda: _Burst(shared, "on", invoke_body, through("on", invoke_path, same)),
            peer=lambda: _Burst(shared, "off", invoke_body, through("off", invoke_path, same)),
            peer_name="the same request, tracing off",
            # Two spans (the request, the call) at ~20 µs each to record, ~25 µs each to encode
            # and post from the exporter's thread, on the same two cores.
            target=Target(max_added_ns=150_000),
            reported=True,
        ),
        Case(
            _GROUP,
            f"BM25 search through the ASGI app ({size}), tracing on (OTLP/HTTP to loopback)",
            ours=lambda: _Burst(shared, "on", search_bodies(), through("on", search_path, same)),
            peer=lambda: _Burst(shared, "off", search_bodies(), through("off", search_path, same)),
            peer_name="the same request, tracing off",
            target=Target(max_added_ns=150_000),  # two spans too: the request, the search
            reported=True,
        ),
    ]
