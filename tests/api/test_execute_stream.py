"""`POST /v1/execute` with `Accept: text/event-stream`, on a real loopback server.

The events are those of `Executor.run(on_output=...)` as Server-Sent Events; a client that hangs
up mid-stream must free both its sandbox and its in-flight slot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from companion_client import Client
from fastapi import FastAPI

from companion.api import create_app
from companion.config import load_settings
from tests.tools._served import serve

pytestmark = pytest.mark.sandbox

_STREAM = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """One plain zygote and one run in flight per key: anything a hang-up left behind would
    make the next request wait or get a 429."""
    settings = load_settings(
        execution_pool_size=1,
        execute_max_concurrent_per_key=1,
        data_dir=tmp_path_factory.mktemp("stream"),
    )
    app: FastAPI = create_app(settings)
    with serve(app) as url:
        _, token = app.state.companion.keys.create("default", ["execute"])
        yield url, {"Authorization": f"Bearer {token}"}


def _streamed(url: str, headers: dict[str, str], code: str) -> httpx.Response:
    """A streamed Python run, read whole."""
    return httpx.post(
        f"{url}/v1/execute",
        json={"language": "python", "code": code},
        headers={**headers, **_STREAM},
        timeout=60,
    )


def _events(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in response.text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_events_come_in_order_and_end_with_the_whole_result(
    served: tuple[str, dict[str, str]],
) -> None:
    url, headers = served
    code = "for i in range(3):\n    print(i)\ndisplay('shown')\n6 * 7"
    response = _streamed(url, headers, code)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = _events(response)
    names = [name for name, _ in events]
    assert names[-1] == "done"
    assert names.count("done") == 1
    stdout = "".join(str(data["text"]) for name, data in events if name == "stdout")
    assert stdout == "0\n1\n2\n"
    results = [data for name, data in events if name == "result"]
    assert [(r["kind"], r["data"]) for r in results] == [("display", "'shown'"), ("value", "42")]
    done = events[-1][1]
    assert done["stdout"] == stdout
    assert done["results"] == results


def test_errors_before_the_stream_are_plain_problems(served: tuple[str, dict[str, str]]) -> None:
    url, headers = served
    bad = httpx.post(
        f"{url}/v1/execute",
        json={"language": "cobol", "code": "x"},
        headers={**headers, **_STREAM},
        timeout=30,
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    unauthorized = httpx.post(
        f"{url}/v1/execute", json={"language": "python", "code": "1"}, headers=_STREAM
    )
    assert unauthorized.status_code == 401


def test_a_client_that_hangs_up_frees_its_sandbox_and_its_slot(
    served: tuple[str, dict[str, str]],
) -> None:
    url, headers = served
    endless = {
        "language": "python",
        "code": "import itertools\nfor i in itertools.count():\n    print(i)",
        "limits": {"wall_time_ms": 30_000, "cpu_time_ms": 30_000},
    }
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", f"{url}/v1/execute", json=endless, headers={**headers, **_STREAM}
        ) as response,
    ):
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first == "event: stdout"
    # Hung up. The server learns of it a moment later; then the key's only slot and the pool's
    # only zygote are free again, long before the endless run's 30 s would have freed them.
    deadline = time.monotonic() + 5
    while True:
        after = httpx.post(
            f"{url}/v1/execute",
            json={"language": "python", "code": "print('next')", "limits": {"wall_time_ms": 3000}},
            headers=headers,
            timeout=30,
        )
        if after.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # real time: polling a real server for a condition, with a deadline
    assert after.status_code == 200, after.text
    assert after.json()["stdout"] == "next\n"


def test_the_python_client_streams(served: tuple[str, dict[str, str]]) -> None:
    url, headers = served
    token = headers["Authorization"].removeprefix("Bearer ")
    with Client(url, token) as client:
        events = list(client.run_stream("print('a')\nprint('b')\n'c'"))
    assert "".join(e.text for e in events if e.kind == "stdout") == "a\nb\n"
    assert [e.result.data for e in events if e.result is not None] == ["'c'"]
    assert events[-1].kind == "done"
    assert events[-1].execution is not None
    assert events[-1].execution.value == "'c'"


def test_many_lines_stream_whole(served: tuple[str, dict[str, str]]) -> None:
    url, headers = served
    code = "for i in range(20_000):\n    print(i)"
    response = _streamed(url, headers, code)
    events = _events(response)
    streamed = "".join(str(data["text"]) for name, data in events if name == "stdout")
    assert streamed == "".join(f"{i}\n" for i in range(20_000))
    assert events[-1][1]["stdout"] == streamed
