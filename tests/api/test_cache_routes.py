"""`GET /v1/cache/stats` and `POST /v1/cache/invalidate`, on memory and on a real Redis L2."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.cache import RedisTier
from companion.config import load_settings
from tests.api.conftest import key_headers


def _client(**settings: object) -> TestClient:
    return TestClient(create_app(load_settings(execution_enabled=False, **settings)))


def test_stats_need_an_admin_key() -> None:
    with _client() as client:
        assert client.get("/v1/cache/stats").status_code == 401
        tools = key_headers(client, "tools")
        assert client.get("/v1/cache/stats", headers=tools).status_code == 403


def test_stats_report_both_tiers_and_hot_keys() -> None:
    with _client() as client:
        cache = client.app.state.companion.cache  # type: ignore[attr-defined]
        cache.set("user:1", "a")
        cache.get("user:1")
        body = client.get("/v1/cache/stats", headers=key_headers(client)).json()
    assert set(body) == {"l1", "l2", "hot_keys"}
    assert body["l1"]["hits"] == 1
    assert body["l1"]["hit_rate"] == 1.0
    assert body["hot_keys"][0][0].endswith("user:1")


@pytest.mark.parametrize(
    ("payload", "removed"),
    [({"key": "user:1:a"}, 1), ({"pattern": "user:1:*"}, 2), ({"tags": ["t1"]}, 1)],
    ids=["key", "pattern", "tags"],
)
def test_invalidate_by_key_pattern_or_tag(payload: dict[str, object], removed: int) -> None:
    with _client() as client:
        cache = client.app.state.companion.cache  # type: ignore[attr-defined]
        cache.set("t:default:user:1:a", 1, tags=["t:default:t1"])
        cache.set("t:default:user:1:b", 2)
        cache.set("t:default:user:2:a", 3)
        cache.set("t:other:user:1:a", 4, tags=["t:other:t1"])  # another tenant's twin
        headers = key_headers(client, "tools")
        response = client.post("/v1/cache/invalidate", json=payload, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"removed": removed}
        assert cache.get("t:default:user:2:a") == 3
        assert cache.get("t:other:user:1:a") == 4  # never crosses tenants


@pytest.mark.parametrize(
    "payload",
    [{}, {"key": "a", "pattern": "b"}, {"tags": []}, {"pattern": ""}, {"key": 3}, {"nope": 1}],
    ids=["none", "two", "no-tags", "empty-pattern", "wrong-type", "unknown"],
)
def test_invalidate_rejects_ambiguous_or_malformed_bodies(payload: dict[str, object]) -> None:
    with _client() as client:
        response = client.post("/v1/cache/invalidate", json=payload, headers=key_headers(client))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.redis
def test_with_redis_configured_l2_is_redis_and_shared(redis_url: str, redis_prefix: str) -> None:
    namespace = redis_prefix.replace(":", "_").rstrip("_")
    with (
        _client(redis_url=redis_url, cache_namespace=namespace) as first,
        _client(redis_url=redis_url, cache_namespace=namespace) as second,
    ):
        cache_a = first.app.state.companion.cache  # type: ignore[attr-defined]
        cache_b = second.app.state.companion.cache  # type: ignore[attr-defined]
        assert isinstance(cache_a._l2, RedisTier)
        cache_a.set("t:default:shared", {"v": 1})
        assert cache_b.get("t:default:shared") == {"v": 1}
        headers = key_headers(second)
        response = second.post("/v1/cache/invalidate", json={"pattern": "sha*"}, headers=headers)
        assert response.json()["removed"] >= 1
        assert cache_b.get("t:default:shared") is None
        cache_a.clear()  # the keys live under this test's own namespace
