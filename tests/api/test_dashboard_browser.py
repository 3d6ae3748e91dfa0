"""`/dashboard` in a real headless Chromium against a real `companion serve`.

The test first generates traffic (tool calls cached and not, sandboxed runs, a 404), then opens the
page with `?token=`, waits until the charts have drawn that data, checks the console stayed clean,
and saves a screenshot to `test-artifacts/dashboard.png` (or `$COMPANION_TEST_ARTIFACTS`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from companion.bench._servers import ServiceProcess
from companion.config import load_settings
from companion.keys import KeyRing, open_key_store
from tests._browser import Browser

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("COMPANION_TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="module")
def service() -> Iterator[tuple[ServiceProcess, str]]:
    server = ServiceProcess.companion(COMPANION_DASHBOARD_SAMPLE_INTERVAL_S="0.5")
    ring = KeyRing(open_key_store(load_settings(data_dir=server.data_dir)))
    try:
        _, token = ring.create("default", ["admin"], name="dashboard-test")
    finally:
        ring.close()
    yield server, token
    server.close()


def _generate_traffic(base: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for i in range(12):
            client.post("/v1/tools/add/invoke", json={"arguments": {"a": i % 3, "b": 1}})
        client.post("/v1/tools/batch", json={"calls": [{"tool": "sqrt", "arguments": {"x": 9}}]})
        for code in ("print(6 * 7)", "raise SystemExit(3)"):
            client.post("/v1/execute", json={"language": "python", "code": code})
        assert client.get("/v1/tools/no_such_tool").status_code == 404


def test_the_dashboard_draws_generated_traffic_with_no_console_errors(
    service: tuple[ServiceProcess, str],
) -> None:
    server, token = service
    base = f"http://127.0.0.1:{server.port}"
    _generate_traffic(base, token)
    with Browser() as browser:
        browser.goto(f"{base}/dashboard?token={token}")
        assert browser.evaluate("location.search") == ""  # the key leaves the address bar
        browser.wait_for("Number(document.body.dataset.points || 0) >= 3")
        # Charts drew the traffic this test made: a line per route, tool calls, sandbox runs.
        browser.wait_for(
            "[...document.querySelectorAll('#chart-rate path.series')]"
            ".some(p => p.dataset.series === '/v1/tools/{name}/invoke')"
        )
        tools_legend = browser.evaluate(
            "document.querySelector('#chart-tools .legend').textContent"
        )
        assert "calls: 13" in tools_legend
        statuses = browser.evaluate(
            "[...document.querySelectorAll('#chart-sandbox path.series')].map(p => p.dataset.series)"
        )
        assert "ok" in statuses
        assert (
            browser.evaluate("document.querySelectorAll('#latency figure path.series').length") >= 3
        )
        assert browser.evaluate("document.querySelectorAll('#chart-cache path.series').length") >= 1
        assert browser.evaluate("document.querySelector('#health tbody').textContent")
        browser.screenshot(ARTIFACTS / "dashboard.png")
        assert browser.errors == []


def test_the_sign_in_form_works_in_a_real_browser(service: tuple[ServiceProcess, str]) -> None:
    # The sign-in refuses `Origin: null`, which a browser sends on the form's own POST when the
    # page says `Referrer-Policy: no-referrer`: this is the form a person uses, end to end.
    server, token = service
    base = f"http://127.0.0.1:{server.port}"
    with Browser() as browser:
        browser.goto(f"{base}/dashboard")
        assert browser.evaluate("document.forms.length") == 1  # the sign-in form, no session yet
        browser.evaluate(
            f"document.getElementById('key').value = {json.dumps(token)};"
            "setTimeout(() => document.forms[0].submit(), 0); true"
        )
        _wait_across_navigation(browser, "!!document.getElementById('chart-rate')")
        assert browser.evaluate("location.pathname + location.search") == "/dashboard"
        assert browser.errors == []


def _wait_across_navigation(browser: Browser, expression: str, timeout_s: float = 30.0) -> None:
    """`wait_for`, tolerating the moments when the page being replaced cannot be evaluated."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if browser.evaluate(expression):
                return
        except RuntimeError:  # "Execution context was destroyed": the next page is loading
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        time.sleep(0.1)  # real-time: a real browser loading a real page
