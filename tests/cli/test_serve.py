"""`companion serve` refuses what cannot work before starting anything: one line, non-zero exit.

Real `companion` processes and real sockets. Before: a taken port started the sandbox pool, said
"serving on ..." and exited 3 with a JSON log line; `--workers 2` on the embedded store started and
acknowledged writes (201) that stayed unsearchable on the other worker.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path

import httpx2 as httpx
import pytest

from tests._services import free_port
from tests.cli.test_cli import _run
from tests.reliability.conftest import LiveServer, start_server, stop_server


def _serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return _run("serve", *args, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("companion serve started instead of refusing", pytrace=False)


def test_a_taken_port_is_one_line_and_exit_1_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The sandbox pool is on (the default): it must not be started for nothing.
        done = _serve("--port", str(port), env={"COMPANION_DATA_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"companion: cannot listen on 127.0.0.1:{port}: the port is in use "
        "(choose another with --port or COMPANION_PORT)"
    ]
    assert done.stdout == ""


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_several_workers_on_the_embedded_store_are_refused(tmp_path: Path, how: str) -> None:
    port = free_port()
    env = {"COMPANION_DATA_DIR": str(tmp_path), "COMPANION_EXECUTION_ENABLED": "false"}
    args = ["--port", str(port)]
    if how == "flag":
        args += ["--workers", "2"]
    else:
        env["COMPANION_WORKERS"] = "2"
    done = _serve(*args, env=env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "companion: 2 workers need COMPANION_DATABASE_URL (PostgreSQL) and COMPANION_REDIS_URL: "
        f"the embedded knowledge store in {tmp_path / 'knowledge'} serves one process, and other "
        "workers would acknowledge writes they cannot make searchable; without Redis each worker "
        "keeps serving search results it cached before another worker's write; run one worker"
    ]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing ever listened


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    # PostgreSQL is shared, but each worker's cached search results are not invalidated by
    # another worker's write without Redis: refused before anything connects anywhere.
    env = {
        "COMPANION_DATA_DIR": str(tmp_path),
        "COMPANION_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    done = _serve("--workers", "3", "--port", str(free_port()), env=env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "companion: 3 workers need COMPANION_REDIS_URL: without Redis each worker keeps serving "
        "search results it cached before another worker's write; run one worker"
    ]


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_with_postgres_and_redis_every_acknowledged_write_is_searchable_on_every_worker(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    server = start_server(
        tmp_path,
        workers="2",
        database_url=database_url,
        redis_url=redis_url,
        cache_namespace=f"t{uuid.uuid4().hex[:12]}",
        execution_enabled="false",
        knowledge_embedder="none",
        rate_limit_default="100000/minute",
    )
    collection = f"c{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {server.keys['acme']}"}
    # A fresh connection per request, so the kernel spreads them over both workers.
    try:
        assert _post(server, "", {"name": collection}, headers).status_code == 201
        for i in range(10):
            # Each worker first caches the empty result, then one of them acknowledges the write.
            for _ in range(4):
                assert _search(server, collection, f"quokka{i}", headers) == []
            body = {"id": f"d{i}", "text": f"quokka{i}"}
            assert _post(server, f"/{collection}/documents", body, headers).status_code == 201
            for _ in range(4):
                assert _search(server, collection, f"quokka{i}", headers) == [f"d{i}"]
    finally:
        httpx.delete(f"{server.url}/v1/collections/{collection}", headers=headers)
        stop_server(server)


def _post(server: LiveServer, path: str, body: object, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/collections{path}", json=body, headers=headers)


def _search(server: LiveServer, collection: str, query: str, headers: dict[str, str]) -> list[str]:
    response = _post(server, f"/{collection}/search", {"query": query}, headers)
    assert response.status_code == 200, response.text
    return [hit["document_id"] for hit in response.json()["results"]]
