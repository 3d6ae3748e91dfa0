"""A bounded load test on loopback: no errors but intended 429s, p99 reported, memory stable."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from typing import Any

import httpx
import psutil
import pytest

from tests.reliability.conftest import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

REQUESTS = 600
CONCURRENCY = 8
DEADLINE_S = 120.0


def _requests(keys: dict[str, str]) -> list[tuple[str, str, dict[str, Any], str]]:
    mix = [
        ("POST", "/v1/tools/add/invoke", {"arguments": {"a": 5, "b": 3}}, keys["acme"]),
        (
            "POST",
            "/v1/tools/batch",
            {"calls": [{"tool": "add", "arguments": {"a": i, "b": 1}} for i in range(10)]},
            keys["acme"],
        ),
        (
            "POST",
            "/v1/execute",
            {"language": "python", "code": "print(sum(range(100)))"},
            keys["zeta"],
        ),
        (
            "POST",
            "/v1/execute",
            {"language": "javascript", "code": "console.log(6 * 7)"},
            keys["acme"],
        ),
        ("GET", "/v1/tools", {}, keys["zeta"]),
        ("POST", "/v1/collections/notes/search", {"query": "sandbox pool", "k": 5}, keys["acme"]),
    ]
    return [mix[i % len(mix)] for i in range(REQUESTS)]


async def _drive(
    url: str, plan: list[tuple[str, str, dict[str, Any], str]]
) -> tuple[Counter[int], list[float]]:
    statuses: Counter[int] = Counter()
    latencies_ms: list[float] = []
    queue: asyncio.Queue[tuple[str, str, dict[str, Any], str]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            method, path, body, key = queue.get_nowait()
            started = time.perf_counter()
            response = await client.request(
                method, path, json=body or None, headers={"Authorization": f"Bearer {key}"}
            )
            latencies_ms.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] += 1

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return statuses, latencies_ms


def _seed_collection(live: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {live.keys['acme']}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as http:
        http.post("/v1/collections", json={"name": "notes"})
        documents = [
            {
                "id": f"n{i}",
                "text": f"note {i}: the sandbox pool keeps warm zygotes, cache tier {i % 3}",
            }
            for i in range(50)
        ]
        assert (
            http.post("/v1/collections/notes/documents", json={"documents": documents}).status_code
            == 201
        )


def test_mixed_load_has_no_errors_and_stable_memory(live: LiveServer) -> None:
    _seed_collection(live)
    process = psutil.Process(live.process.pid)
    warm_plan = _requests(live.keys)[:100]
    asyncio.run(_drive(live.url, warm_plan))  # warm-up: pools, caches, first imports
    rss_before = process.memory_info().rss
    statuses, latencies_ms = asyncio.run(_drive(live.url, _requests(live.keys)))
    rss_after = process.memory_info().rss
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] >= REQUESTS * 0.9, statuses
    assert sum(statuses.values()) == REQUESTS
    cuts = statistics.quantiles(latencies_ms, n=100)
    print(  # reported, not asserted: timings belong to `companion bench`
        f"\nload: {REQUESTS} requests x {CONCURRENCY} clients: p50 {cuts[49]:.1f} ms, "
        f"p99 {cuts[98]:.1f} ms; RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB"
    )
    assert rss_after <= rss_before * 1.2, (rss_before, rss_after)
