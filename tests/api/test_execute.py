"""`POST /v1/execute` and `GET /v1/runtimes` over HTTP, against real sandboxes."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = load_settings(
        execution_pool_size=1,
        execution_max_queue=1,
        data_dir=tmp_path_factory.mktemp("data"),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(key_headers(client, "execute"))
        yield client


def test_execute_python(client: TestClient) -> None:
    response = client.post(
        "/v1/execute", json={"language": "python", "code": "print(sum(range(10)))"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["stdout"] == "45\n"
    assert set(body["usage"]) == {"wall_ms", "cpu_ms", "memory_bytes"}


def test_execute_javascript_runtime_error_is_a_200_result(client: TestClient) -> None:
    response = client.post("/v1/execute", json={"language": "js", "code": "undefinedThing()"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "runtime_error"
    assert body["error"]["name"] == "ReferenceError"


@pytest.mark.parametrize(
    ("payload", "status", "pointer"),
    [
        ({"language": "cobol", "code": "x"}, 422, "/language"),
        ({"language": "python", "code": ""}, 422, "/code"),
        (
            {"language": "python", "code": "x", "limits": {"wall_time_ms": 10**8}},
            422,
            "/limits/wall_time_ms",
        ),
        (
            {"language": "python", "code": "x", "limits": {"wall_time_ms": "5"}},
            422,
            "/limits/wall_time_ms",
        ),
        ({"language": "python"}, 422, ""),
        ({"language": "python", "code": "x", "unknown": 1}, 422, "/unknown"),
    ],
    ids=["language", "empty", "limit-above-max", "string-limit", "no-code", "unknown-field"],
)
def test_bad_requests_are_problems_naming_the_field(
    client: TestClient, payload: dict[str, object], status: int, pointer: str
) -> None:
    response = client.post("/v1/execute", json=payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    pointers = [error["pointer"] for error in response.json()["errors"]]
    assert pointer in pointers


def test_invalid_utf8_body_is_a_400(client: TestClient) -> None:
    body = b'{"language": "python", "code": "print(\xff)"}'
    response = client.post(
        "/v1/execute", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


def test_runtimes_lists_languages_limits_and_layers(client: TestClient) -> None:
    body = client.get("/v1/runtimes").json()
    languages = {runtime["language"]: runtime for runtime in body["runtimes"]}
    assert set(languages) == {"python", "javascript"}
    assert "js" in languages["javascript"]["aliases"]
    python = languages["python"]
    assert python["default_limits"]["wall_time_ms"] <= python["max_limits"]["wall_time_ms"]
    layers = {layer["name"]: layer["active"] for layer in body["isolation"]}
    assert layers["seccomp"] is True
    packages = {package["name"] for package in python["packages"]}
    assert {"numpy", "pandas", "matplotlib", "scipy", "scikit-learn"} <= packages
    assert languages["javascript"]["packages"] == []
    assert python["max_limits"]["max_returned_files"] > 0


def test_files_go_in_and_come_back_with_rich_results(client: TestClient) -> None:
    payload = {
        "language": "python",
        "code": (
            "import json\n"
            "rows = json.load(open('in/rows.json'))\n"
            "open('out.bin', 'wb').write(open('raw.bin', 'rb').read()[::-1])\n"
            "display({'rows': len(rows)})\n"
            "sum(rows)"
        ),
        "files": [
            {"name": "in/rows.json", "content": "[1, 2, 3]"},
            {
                "name": "raw.bin",
                "content": base64.b64encode(b"\x00\x01\x02").decode(),
                "encoding": "base64",
            },
        ],
    }
    response = client.post("/v1/execute", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok", body
    assert [(r["kind"], r["data"]) for r in body["results"]] == [
        ("display", "{'rows': 3}"),
        ("value", "6"),
    ]
    assert body["files"] == [
        {
            "path": "out.bin",
            "size_bytes": 3,
            "mime_type": "application/octet-stream",
            "content_base64": base64.b64encode(b"\x02\x01\x00").decode(),
        }
    ]
    assert body["files_truncated"] is False


def test_a_body_above_max_body_bytes_is_accepted_for_input_files(client: TestClient) -> None:
    data = os.urandom(1_500_000)  # base64 ~2 MB, above the 1 MiB general body limit
    payload = {
        "language": "python",
        "code": "import hashlib\nprint(hashlib.sha256(open('blob', 'rb').read()).hexdigest())",
        "files": [
            {"name": "blob", "content": base64.b64encode(data).decode(), "encoding": "base64"}
        ],
    }
    response = client.post("/v1/execute", json=payload)
    assert response.status_code == 200, response.text
    assert response.json()["stdout"] == hashlib.sha256(data).hexdigest() + "\n"
    too_big = client.post("/v1/tools/add/invoke", content=b"x" * 2_000_000)
    assert too_big.status_code == 413


@pytest.mark.parametrize(
    ("files", "pointer", "named"),
    [
        ([{"name": "../up.txt", "content": "x"}], "/files/0/name", "'../up.txt'"),
        ([{"name": "/etc/passwd", "content": "x"}], "/files/0/name", "'/etc/passwd'"),
        ([{"name": "ok", "content": "!!", "encoding": "base64"}], "/files/0", "'ok'"),
        ([{"name": f"f{i}", "content": ""} for i in range(65)], "/files", "65 files"),
        (
            [
                {
                    "name": "big",
                    "content": base64.b64encode(b"x" * 8_388_609).decode(),
                    "encoding": "base64",
                }
            ],
            "/files",
            "8388609 bytes",
        ),
    ],
    ids=["traversal", "absolute", "base64", "too-many", "too-large"],
)
def test_bad_input_files_are_422_naming_the_file(
    client: TestClient, files: list[dict[str, str]], pointer: str, named: str
) -> None:
    response = client.post("/v1/execute", json={"language": "python", "code": "1", "files": files})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert pointer in [error["pointer"] for error in problem["errors"]], problem
    assert named in response.text


def test_a_full_queue_is_a_503_with_retry_after(client: TestClient) -> None:
    slow = {"language": "python", "code": "import time\ntime.sleep(0.6)"}
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda _: client.post("/v1/execute", json=slow), range(4)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) >= 2  # one running, one queued
    busy = [response for response in responses if response.status_code == 503]
    assert busy, statuses
    assert busy[0].headers["retry-after"] == "1"
    assert busy[0].json()["code"] == "executor_busy"
    assert (
        client.post("/v1/execute", json={"language": "py", "code": "print(1)"}).json()["stdout"]
        == "1\n"
    )


def test_runs_are_counted_in_metrics(client: TestClient) -> None:
    client.post("/v1/execute", json={"language": "python", "code": "raise SystemExit(2)"})
    metrics = client.get("/metrics").text
    assert 'companion_execution_runs_total{language="python",status="runtime_error"}' in metrics
    assert "companion_execution_duration_seconds_bucket" in metrics
    assert 'companion_sandbox_size{pool="zygotes"} 1.0' in metrics
