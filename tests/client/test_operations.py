"""Health, runtimes, the cache, monitoring and profiling through the client, against a real
`companion serve`."""

from __future__ import annotations

import json

import httpx
import pytest
from companion_client import (
    Alerts,
    AsyncClient,
    CacheStats,
    Client,
    Forbidden,
    NotFound,
    TierStats,
    ValidationFailed,
)

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]
Server = tuple[str, dict[str, str]]


def test_health_and_runtimes(server: Server) -> None:
    url, keys = server
    with Client(url) as anonymous:  # the probes need no key
        assert anonymous.live() == {"status": "ok"}
        ready = anonymous.ready()
        assert ready["status"] in {"ready", "degraded"}
        assert ready["checks"]["sandbox"]["ok"] is True
    with Client(url, keys["execute"]) as client:
        runtimes = client.runtimes()
        assert {r["language"] for r in runtimes["runtimes"]} >= {"python", "javascript"}
        assert runtimes["isolation"]
        assert client.request("GET", "/v1/runtimes") == runtimes


def test_cache_stats_and_invalidation(server: Server) -> None:
    url, keys = server
    with Client(url, keys["tools"]) as client:
        assert not client.invoke_tool("subtract", {"a": 9, "b": 4}).cached
        assert client.invoke_tool("subtract", {"a": 9, "b": 4}).cached  # a pure tool
        assert client.invalidate(pattern="tools:subtract:*") >= 1
        assert not client.invoke_tool("subtract", {"a": 9, "b": 4}).cached
        assert client.invoke_tool("subtract", {"a": 9, "b": 4}).cached
        assert client.invalidate(key="nothing:here") == 0
        assert client.invalidate(tags=["no-such-tag"]) == 0
        with pytest.raises(ValidationFailed, match="1 field is invalid"):
            client.invalidate(key="a", pattern="b*")  # exactly one of the three
        with pytest.raises(Forbidden):
            client.cache_stats()  # admin only
    with Client(url, keys["admin"]) as admin:
        stats = admin.cache_stats()
    assert isinstance(stats, CacheStats)
    assert isinstance(stats.l1, TierStats)
    assert stats.l1.hits >= 1
    assert 0.0 <= stats.l1.hit_rate <= 1.0
    assert any("subtract" in key for key, _ in stats.hot_keys)


def test_monitoring_alerts_and_profiling(server: Server) -> None:
    url, keys = server
    with Client(url, keys["admin"]) as admin:
        admin.runtimes()
        report = admin.monitoring_report()
        assert {"endpoints", "caches", "system", "alerts", "health"} <= set(report)
        alerts = admin.alerts()
        assert isinstance(alerts, Alerts)
        assert all(alert.state for alert in alerts.active + alerts.history)
        profile = admin.profiling_report(sort_by="count", limit=5)
        assert profile["sort_by"] == "count"
        assert 1 <= len(profile["stats"]) <= 5
        assert "http /v1/runtimes" in {row["name"] for row in admin.profiling_report()["stats"]}
        text = admin.profiling_report_text(limit=3)
        assert "name" in text.splitlines()[0]
    with Client(url, keys["execute"]) as client, pytest.raises(Forbidden):
        client.monitoring_report()


def test_a_deep_trace_is_read_back_by_id(server: Server) -> None:
    url, keys = server
    traced = httpx.get(
        f"{url}/v1/runtimes",
        headers={"Authorization": f"Bearer {keys['admin']}", "X-Companion-Trace": "1"},
        timeout=30,
    )
    trace_id = traced.headers["X-Companion-Trace-Id"]
    with Client(url, keys["admin"]) as admin:
        assert admin.get_trace(trace_id)  # a text call tree
        assert "<html" in admin.get_trace(trace_id, format="html").lower()
        speedscope = json.loads(admin.get_trace(trace_id, format="speedscope"))
        assert "profiles" in speedscope
        with pytest.raises(NotFound):
            admin.get_trace("nope")


async def test_async_operations(server: Server) -> None:
    url, keys = server
    async with AsyncClient(url, keys["admin"]) as admin:
        assert await admin.live() == {"status": "ok"}
        assert (await admin.ready())["checks"]
        assert (await admin.runtimes())["runtimes"]
        assert isinstance(await admin.cache_stats(), CacheStats)
        assert await admin.invalidate(key="nothing") == 0
        assert "endpoints" in await admin.monitoring_report()
        assert isinstance(await admin.alerts(), Alerts)
        assert (await admin.profiling_report(limit=1))["shown"] == 1
        assert await admin.profiling_report_text(limit=1)
        assert await admin.request("GET", "/livez") == {"status": "ok"}
        with pytest.raises(NotFound):
            await admin.get_trace("nope")
