"""`/dashboard` sign-in, sessions, the JSON feed and its assets (in-process; the browser test is apart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.api._dashboard_session import COOKIE, SessionSigner
from companion.config import load_settings
from tests._clock import FakeClock
from tests.api.conftest import key_headers


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=tmp_path,
        execution_enabled=False,
        key_cache_ttl_s=1e-6,
        dashboard_history_entries=3,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _token(client: TestClient, *scopes: str) -> str:
    return key_headers(client, *scopes)["Authorization"].removeprefix("Bearer ")


def test_without_a_session_the_page_is_the_sign_in_form(client: TestClient) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert '<form method="post" action="/dashboard/session">' in response.text
    assert "script-src" not in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_signing_in_sets_a_signed_httponly_strict_cookie_not_the_key(client: TestClient) -> None:
    token = _token(client, "admin")
    response = client.post("/dashboard/session", data={"key": token}, follow_redirects=False)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/dashboard" in cookie
    assert token not in cookie
    page = client.get("/dashboard")
    assert 'id="chart-rate"' in page.text
    assert client.get("/dashboard/data").status_code == 200


def test_token_query_signs_in_and_redirects_to_a_clean_address(client: TestClient) -> None:
    response = client.get(f"/dashboard?token={_token(client)}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    assert COOKIE in response.headers["set-cookie"]


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [("not-a-key", 401, "Malformed API key"), ("", 401, "Paste an API key")],
)
def test_bad_keys_get_the_form_again_with_the_reason(
    client: TestClient, key: str, status: int, message: str
) -> None:
    response = client.post("/dashboard/session", data={"key": key})
    assert response.status_code == status
    assert message in response.text
    assert "set-cookie" not in response.headers


def test_keys_without_admin_scope_are_refused(client: TestClient) -> None:
    response = client.post("/dashboard/session", data={"key": _token(client, "tools")})
    assert response.status_code == 403
    data = client.get("/dashboard/data", headers=key_headers(client, "tools"))
    assert data.status_code == 403
    assert data.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://testserver.evil"])
def test_a_sign_in_posted_from_another_site_is_refused(client: TestClient, origin: str) -> None:
    # `null` comes from sandboxed frames, `data:` pages and cross-site redirects: any site can
    # send it, so it vouches for nothing.
    response = client.post(
        "/dashboard/session", data={"key": _token(client)}, headers={"Origin": origin}
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Sign in from the dashboard's own page."
    assert "set-cookie" not in response.headers


def test_the_pages_let_the_browser_name_their_own_origin(client: TestClient) -> None:
    # Under `no-referrer` a browser sends `Origin: null` on the form's own same-origin POST.
    assert client.get("/dashboard").headers["referrer-policy"] == "same-origin"
    response = client.post(
        "/dashboard/session",
        data={"key": _token(client)},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert COOKIE in response.headers["set-cookie"]


def test_the_feed_needs_admin_by_cookie_or_by_key(client: TestClient) -> None:
    anonymous = client.get("/dashboard/data")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert client.get("/dashboard/data", headers=key_headers(client)).status_code == 200


def test_a_tampered_cookie_is_refused(client: TestClient) -> None:
    client.get(f"/dashboard?token={_token(client)}")
    value = client.cookies[COOKIE]
    key_id, expires, mac = value.split(".")
    client.cookies.clear()
    client.cookies.set(COOKIE, f"{key_id}.{int(expires) + 3600}.{mac}")
    assert client.get("/dashboard/data").status_code == 401


def test_revoking_the_key_ends_its_sessions(client: TestClient) -> None:
    ring = client.app.state.companion.keys  # type: ignore[attr-defined]
    record, token = ring.create("default", ["admin"])
    client.get(f"/dashboard?token={token}")
    assert client.get("/dashboard/data").status_code == 200
    ring.revoke(record.key_id)
    assert client.get("/dashboard/data").status_code == 401


def test_session_cookies_expire() -> None:
    clock = FakeClock()
    signer = SessionSigner(b"secret", ttl_s=60, clock=clock)
    value = signer.issue("key1")
    assert signer.verify(value) == "key1"
    clock.advance(61)
    assert signer.verify(value) is None
    assert SessionSigner(b"other", ttl_s=60, clock=clock).verify(signer.issue("k")) is None


def test_the_feed_keeps_a_bounded_history_with_request_rates(client: TestClient) -> None:
    feed = client.app.state.companion.dashboard  # type: ignore[attr-defined]
    headers = key_headers(client, "tools")
    for _ in range(4):
        feed.sample()
        client.post("/v1/tools/add/invoke", json={"arguments": {"a": 1, "b": 2}}, headers=headers)
    data = client.get("/dashboard/data", headers=key_headers(client)).json()
    assert len(data["points"]) == 3  # dashboard_history_entries
    last = data["points"][-1]
    invoke = last["routes"]["/v1/tools/{name}/invoke"]
    assert invoke["count"] == 3
    assert invoke["rps"] > 0
    assert invoke["p99"] >= invoke["p50"] > 0
    assert last["tools"]["calls"] == 3
    assert last["cache"]["l1"]["hits"] >= 1
    assert set(data) == {"interval_s", "points", "alerts", "health"}


def test_assets_ship_in_the_package_with_etags(client: TestClient) -> None:
    script = client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    again = client.get(
        "/dashboard/static/dashboard.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    assert client.get("/dashboard/static/nope.js").status_code == 404


def test_signing_out_clears_the_cookie(client: TestClient) -> None:
    client.get(f"/dashboard?token={_token(client)}")
    response = client.post("/dashboard/signout", follow_redirects=False)
    assert response.status_code == 303
    assert 'companion_dashboard=""' in response.headers["set-cookie"]
