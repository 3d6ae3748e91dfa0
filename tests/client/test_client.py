"""The Python client against a real `companion serve` on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.client import AsyncClient, Client, InputFile, save_file
from companion.errors import Forbidden, InvalidInput, NotFound, Unauthorized, ValidationFailed
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
    env["COMPANION_EXECUTION_DATA_POOL_SIZE"] = "1"
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


def test_run_sends_files_and_decodes_results_and_returned_files(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, keys = server
    source = tmp_path / "sales.csv"
    source.write_text("region,amount\nnorth,3\nsouth,5\nnorth,4\n")
    code = (
        "import pandas as pd\n"
        "sales = pd.read_csv('sales.csv')\n"
        "totals = sales.groupby('region').amount.sum()\n"
        "totals.plot.bar()\n"
        "totals.to_csv('totals.csv')\n"
        "totals.to_dict()"
    )
    with Client(url, keys["execute"]) as client:
        run = client.run(code, files=[InputFile.from_path(source)])
    assert run.ok, run
    assert run.value == "{'north': 7, 'south': 5}"
    [image] = run.images()
    assert image.mime_type == "image/png"
    assert image.content().startswith(b"\x89PNG")
    saved = run.save_files(tmp_path / "out")
    assert saved == [(tmp_path / "out" / "totals.csv").resolve()]
    assert saved[0].read_text() == "region,amount\nnorth,7\nsouth,5\n"


async def test_async_run_takes_files_as_a_mapping(server: tuple[str, dict[str, str]]) -> None:
    url, keys = server
    async with AsyncClient(url, keys["execute"]) as client:
        run = await client.run(
            "print(open('a.txt').read(), open('b.bin', 'rb').read())",
            files={"a.txt": "text", "b.bin": b"\x00\xff"},
        )
    assert run.stdout == "text b'\\x00\\xff'\n"
    assert run.files == []


@pytest.mark.parametrize(
    "path", ["../escape.txt", "/etc/evil", "a/../../b", "..\\x", "C:x", "a//b"]
)
def test_save_file_never_writes_outside_the_folder(tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidInput, match="not a relative path"):
        save_file(tmp_path / "out", path, b"x")
    assert not (tmp_path / "escape.txt").exists()


def test_save_file_does_not_follow_a_link_in_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "sub").symlink_to(outside)
    (folder / "file").symlink_to(outside / "target")
    with pytest.raises(InvalidInput, match="is a link"):
        save_file(folder, "sub/x.txt", b"x")
    with pytest.raises(InvalidInput, match="exists; not replaced"):
        save_file(folder, "file", b"x")
    with pytest.raises(InvalidInput, match="cannot write"):
        save_file(folder, "file", b"x", overwrite=True)
    assert list(outside.iterdir()) == []


def test_save_file_never_replaces_a_file_unless_asked(tmp_path: Path) -> None:
    mine = tmp_path / "Makefile"
    mine.write_text("mine")
    with pytest.raises(InvalidInput, match="exists; not replaced"):
        save_file(tmp_path, "Makefile", b"theirs")
    assert mine.read_text() == "mine"
    save_file(tmp_path, "Makefile", b"theirs", overwrite=True)
    assert mine.read_text() == "theirs"


def test_save_file_names_a_file_standing_where_a_folder_should(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("a file")
    with pytest.raises(InvalidInput, match="cannot make"):
        save_file(tmp_path / "out", "a/b.txt", b"x")
