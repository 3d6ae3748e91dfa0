"""The Python client against a real `companion serve` on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.client import AsyncClient, Client
from companion.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from tests._services import free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]
COMPANION = str(Path(sys.executable).parent / "companion")


def _key(env: dict[str, str], scopes: str) -> str:
    done = subprocess.run(
        [COMPANION, "keys", "create", "--tenant", "acme", "--scopes", scopes],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env["COMPANION_DATA_DIR"] = str(tmp_path_factory.mktemp("served"))
    env["COMPANION_EXECUTION_POOL_SIZE"] = "1"
    keys = {"execute": _key(env, "execute"), "tools": _key(env, "tools")}
    port = free_port()
    process = subprocess.Popen(
        [COMPANION, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for_port(port, timeout_s=60), "companion serve did not listen"
        yield f"http://127.0.0.1:{port}", keys
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_sync_client_executes_and_maps_errors(server: tuple[str, dict[str, str]]) -> None:
    url, keys = server
    with Client(url, keys["execute"]) as client:
        assert client.ready()["status"] == "ready"
        result = client.execute("python", "print(6 * 7)")
        assert result["stdout"] == "42\n"
        assert {r["language"] for r in client.runtimes()["runtimes"]} >= {"python", "javascript"}
        with pytest.raises(ValidationFailed) as caught:
            client.execute("cobol", "x")
        assert caught.value.errors[0]["pointer"] == "/language"
        with pytest.raises(Forbidden):
            client.request("GET", "/v1/alerts")
        with pytest.raises(NotFound):
            client.request("GET", "/v1/nowhere")
    with Client(url, keys["tools"]) as client, pytest.raises(Forbidden):
        client.execute("python", "print(1)")
    with Client(url, "cmp_0123456789ab_" + "0" * 48) as client, pytest.raises(Unauthorized):
        client.execute("python", "print(1)")


async def test_async_client(server: tuple[str, dict[str, str]]) -> None:
    url, keys = server
    async with AsyncClient(url, keys["execute"]) as client:
        result = await client.execute("javascript", "console.log([1, 2].map((x) => x * 3))")
        assert result["stdout"] == "[3,6]\n"


def test_cli_remote_mode_uses_the_client(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, keys = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    script = tmp_path / "remote.py"
    script.write_text("print(sum(range(5)))")

    def cli(*args: str, key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMPANION, *args, "--url", url],
            env={**env, "COMPANION_API_KEY": key},
            capture_output=True,
            text=True,
            timeout=60,
        )

    ran = cli("exec", str(script), key=keys["execute"])
    assert (ran.returncode, ran.stdout) == (0, "10\n"), ran.stderr
    denied = cli("exec", str(script), key=keys["tools"])
    assert denied.returncode == 1
    assert "lacks the `execute` scope" in denied.stderr
    called = cli("tools", "call", "add", '{"a": 2, "b": 3}', key=keys["tools"])
    assert called.returncode == 0, called.stderr
    assert '"value": 5.0' in called.stdout
