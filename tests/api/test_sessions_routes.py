"""`/v1/sessions` on a real loopback server: cells, streaming, files, tenancy, caps and errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from companion.api import create_app
from companion.config import load_settings
from tests.tools._served import serve

pytestmark = pytest.mark.sandbox

_STREAM = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """A server with small caps and one run in flight per key; keys of two tenants."""
    settings = load_settings(
        execution_pool_size=1,
        execute_max_concurrent_per_key=1,
        execution_max_sessions=4,
        execution_max_sessions_per_tenant=2,
        execution_session_spares=1,
        data_dir=tmp_path_factory.mktemp("sessions"),
    )
    app: FastAPI = create_app(settings)
    with serve(app) as url:
        keys = app.state.companion.keys
        headers = {
            tenant: {"Authorization": f"Bearer {keys.create(tenant, ['execute'])[1]}"}
            for tenant in ("acme", "globex", "initech")
        }
        _, read_only = keys.create("acme", ["knowledge:read"])
        headers["no-execute"] = {"Authorization": f"Bearer {read_only}"}
        _, agent = keys.create("acme", ["tools", "execute"])
        headers["agent"] = {"Authorization": f"Bearer {agent}"}
        yield url, headers


def _open(url: str, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = httpx.post(f"{url}/v1/sessions", json=body, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _cell(url: str, headers: dict[str, str], session_id: object, code: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/sessions/{session_id}/execute", json={"code": code}, headers=headers, timeout=60
    )


def _close(url: str, headers: dict[str, str], session_id: object) -> None:
    assert httpx.delete(f"{url}/v1/sessions/{session_id}", headers=headers).status_code == 204


def _events(text: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in text.split("\n\n"):
        if block:
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_a_session_keeps_state_over_http(served: tuple[str, dict[str, dict[str, str]]]) -> None:
    url, keys = served
    acme = keys["acme"]
    session = _open(url, acme, language="python", idle_timeout_s=120)
    assert str(session["id"]).startswith("ses_")
    assert session["state"] == "idle"
    assert session["idle_timeout_s"] == 120
    first = _cell(url, acme, session["id"], "x = 41")
    assert (first.status_code, first.json()["execution_count"]) == (200, 1)
    second = _cell(url, acme, session["id"], "x + 1").json()
    assert second["results"][0]["data"] == "42"
    assert second["session_id"] == session["id"]
    assert second["execution_count"] == 2
    listed = httpx.get(f"{url}/v1/sessions", headers=acme).json()["sessions"]
    assert [s["id"] for s in listed] == [session["id"]]
    shown = httpx.get(f"{url}/v1/sessions/{session['id']}", headers=acme).json()
    assert shown["execution_count"] == 2
    _close(url, acme, session["id"])
    gone = _cell(url, acme, session["id"], "x")
    assert gone.status_code == 404


def test_cells_stream_in_order_and_end_with_the_whole_result(
    served: tuple[str, dict[str, dict[str, str]]],
) -> None:
    url, keys = served
    acme = keys["acme"]
    session = _open(url, acme)
    response = httpx.post(
        f"{url}/v1/sessions/{session['id']}/execute",
        json={"code": "for i in range(3):\n    print(i)\ndisplay('shown')\n6 * 7"},
        headers={**acme, **_STREAM},
        timeout=60,
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert [name for name, _ in events][-1] == "done"
    stdout = "".join(str(data["text"]) for name, data in events if name == "stdout")
    assert stdout == "0\n1\n2\n"
    results = [(d["kind"], d["data"]) for name, d in events if name == "result"]
    assert results == [("display", "'shown'"), ("value", "42")]
    done = events[-1][1]
    assert (done["stdout"], done["execution_count"]) == (stdout, 1)
    _close(url, acme, session["id"])


def test_a_client_hanging_up_mid_cell_interrupts_it_and_the_session_lives_on(
    served: tuple[str, dict[str, dict[str, str]]],
) -> None:
    url, keys = served
    acme = keys["acme"]
    session = _open(url, acme)
    _cell(url, acme, session["id"], "kept = 'yes'")
    endless = {
        "code": "import itertools\nfor i in itertools.count():\n    print(i)",
        "limits": {"wall_time_ms": 30_000, "cpu_time_ms": 30_000},
    }
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{url}/v1/sessions/{session['id']}/execute",
            json=endless,
            headers={**acme, **_STREAM},
        ) as response,
    ):
        assert next(response.iter_lines()) == "event: stdout"
    # Hung up: the server interrupts the cell, and the key's only slot is free again, long
    # before the cell's 30 s.
    deadline = time.monotonic() + 10
    while True:
        after = _cell(url, acme, session["id"], "print(kept)")
        if after.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # real time: polling a real server for a condition, with a deadline
    assert after.status_code == 200, after.text
    assert after.json()["stdout"] == "yes\n"
    _close(url, acme, session["id"])


def test_workspace_files_over_http(served: tuple[str, dict[str, dict[str, str]]]) -> None:
    url, keys = served
    acme = keys["acme"]
    session = _open(url, acme)
    base = f"{url}/v1/sessions/{session['id']}/files"
    put = httpx.put(f"{base}/data/raw.bin", content=b"\x00\x01\xff", headers=acme)
    assert put.status_code == 204, put.text
    posted = httpx.post(
        base, json={"files": [{"name": "notes.md", "content": "# hi"}]}, headers=acme
    )
    assert [f["path"] for f in posted.json()["files"]] == ["data/raw.bin", "notes.md"]
    made = _cell(url, acme, session["id"], "open('out.csv', 'w').write('a,b\\n')").json()
    assert [f["path"] for f in made["files"]] == ["out.csv"]
    downloaded = httpx.get(f"{base}/data/raw.bin", headers=acme)
    assert downloaded.content == b"\x00\x01\xff"
    csv = httpx.get(f"{base}/out.csv", headers=acme)
    assert (csv.text, csv.headers["content-type"].split(";")[0]) == ("a,b\n", "text/csv")
    assert httpx.delete(f"{base}/notes.md", headers=acme).status_code == 204
    missing = httpx.get(f"{base}/notes.md", headers=acme)
    assert (missing.status_code, missing.json()["code"]) == (404, "file_not_found")
    hidden = httpx.put(f"{base}/.bashrc", content=b"x", headers=acme)
    assert hidden.status_code == 422
    _close(url, acme, session["id"])


def test_another_tenant_gets_404_everywhere(served: tuple[str, dict[str, dict[str, str]]]) -> None:
    url, keys = served
    session = _open(url, keys["acme"])
    other = keys["globex"]
    sid = session["id"]
    attempts = [
        httpx.get(f"{url}/v1/sessions/{sid}", headers=other),
        httpx.post(f"{url}/v1/sessions/{sid}/execute", json={"code": "1"}, headers=other),
        httpx.get(f"{url}/v1/sessions/{sid}/files", headers=other),
        httpx.get(f"{url}/v1/sessions/{sid}/files/x.txt", headers=other),
        httpx.put(f"{url}/v1/sessions/{sid}/files/x.txt", content=b"x", headers=other),
        httpx.delete(f"{url}/v1/sessions/{sid}", headers=other),
    ]
    for response in attempts:
        assert response.status_code == 404, (response.request.url, response.text)
        assert response.json()["code"] == "session_not_found"
    assert httpx.get(f"{url}/v1/sessions", headers=other).json() == {
        "sessions": [],
        "unreachable_nodes": [],
    }
    no_scope = httpx.post(f"{url}/v1/sessions", json={}, headers=keys["no-execute"])
    assert no_scope.status_code == 403
    _close(url, keys["acme"], sid)


def test_caps_answer_429_and_503_with_retry_after(
    served: tuple[str, dict[str, dict[str, str]]],
) -> None:
    url, keys = served
    opened = [_open(url, keys["acme"]), _open(url, keys["acme"])]
    tenant_full = httpx.post(f"{url}/v1/sessions", json={}, headers=keys["acme"])
    assert tenant_full.status_code == 429
    assert tenant_full.json()["code"] == "session_limit"
    assert int(tenant_full.headers["retry-after"]) >= 1
    opened += [_open(url, keys["globex"]), _open(url, keys["globex"])]
    node_full = httpx.post(f"{url}/v1/sessions", json={}, headers=keys["initech"])
    assert node_full.status_code == 503
    assert node_full.json()["code"] == "session_capacity"
    assert int(node_full.headers["retry-after"]) >= 1
    for session, tenant in zip(opened, ["acme", "acme", "globex", "globex"], strict=True):
        _close(url, keys[tenant], session["id"])


def test_an_ended_session_answers_410_with_its_reason(
    served: tuple[str, dict[str, dict[str, str]]],
) -> None:
    url, keys = served
    acme = keys["acme"]
    session = _open(url, acme)
    crashed = _cell(url, acme, session["id"], "import os\nos._exit(5)").json()
    assert crashed["session_ended"] == "its process exited with code 5"
    streamed = httpx.post(
        f"{url}/v1/sessions/{session['id']}/execute",
        json={"code": "1"},
        headers={**acme, **_STREAM},
    )
    assert (streamed.status_code, streamed.json()["code"]) == (410, "session_ended")  # no stream
    after = _cell(url, acme, session["id"], "1")
    assert after.status_code == 410
    assert after.json()["code"] == "session_ended"
    assert "exited with code 5" in after.json()["detail"]
    shown = httpx.get(f"{url}/v1/sessions/{session['id']}", headers=acme).json()
    assert (shown["state"], shown["ended_reason"]) == ("ended", "its process exited with code 5")
    _close(url, acme, session["id"])


def test_bad_requests_are_422_problems(served: tuple[str, dict[str, dict[str, str]]]) -> None:
    url, keys = served
    acme = keys["acme"]
    for body in ({"language": "cobol"}, {"limits": {"memory_bytes": 2**40}}, {"extra": 1}):
        response = httpx.post(f"{url}/v1/sessions", json=body, headers=acme)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    session = _open(url, acme)
    cell = httpx.post(
        f"{url}/v1/sessions/{session['id']}/execute",
        json={"code": "1", "limits": {"memory_bytes": 1}},
        headers=acme,
    )
    assert cell.status_code == 422  # a session's memory is set when it opens
    _close(url, acme, session["id"])


async def test_an_agent_keeps_state_over_mcp_http(
    served: tuple[str, dict[str, dict[str, str]]],
) -> None:
    url, keys = served
    async with (
        httpx2.AsyncClient(headers=keys["agent"]) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        opened = await client.call_tool("open_session", {})
        assert opened.structured_content is not None, opened
        session_id = opened.structured_content["session_id"]
        await client.call_tool("run_code", {"code": "import math\nr = 2", "session_id": session_id})
        area = await client.call_tool(
            "run_code", {"code": "math.pi * r ** 2", "session_id": session_id}
        )
        assert area.structured_content is not None
        assert area.structured_content["results"][0]["data"].startswith("12.566")
        # The session is the key's tenant's: the HTTP API sees it too.
        shown = await http.get(f"{url}/v1/sessions/{session_id}")
        assert shown.json()["execution_count"] == 2
        closed = await client.call_tool("close_session", {"session_id": session_id})
        assert not closed.is_error
        gone = await http.get(f"{url}/v1/sessions/{session_id}")
        assert gone.status_code == 404


def test_sessions_are_in_the_metrics(served: tuple[str, dict[str, dict[str, str]]]) -> None:
    url, keys = served
    session = _open(url, keys["acme"])
    metrics = httpx.get(f"{url}/metrics").text
    active = [line for line in metrics.splitlines() if line.startswith("companion_sessions_active")]
    assert active == ['companion_sessions_active{node="local"} 1.0'], active
    assert 'companion_sessions_started_total{node="local"}' in metrics
    _close(url, keys["acme"], session["id"])
