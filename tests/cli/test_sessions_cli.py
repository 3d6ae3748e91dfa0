"""`companion sessions ...` and `companion exec --session` as subprocesses against a real service."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.client.test_client import COMPANION, served

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with served(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.fixture
def cli(server: tuple[str, dict[str, str]], tmp_path: Path) -> Cli:
    """`companion ARGS --url URL` in `tmp_path`, with the execute key unless `key=` names one."""
    url, keys = server
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}

    def run(
        *args: str, key: str = "execute", stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMPANION, *args, "--url", url],
            env={**clean, "COMPANION_API_KEY": keys[key]},
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def test_create_exec_files_download_close(cli: Cli, tmp_path: Path) -> None:
    created = cli("sessions", "create", "--idle-timeout-s", "120", "--memory-bytes", "200000000")
    assert created.returncode == 0, created.stderr
    session_id = created.stdout.strip()
    assert session_id.startswith("ses_")
    info = json.loads(cli("sessions", "show", session_id).stdout)
    assert (info["idle_timeout_s"], info["limits"]["memory_bytes"]) == (120, 200_000_000)
    assert session_id in {row["id"] for row in json.loads(cli("sessions", "list", "--json").stdout)}

    script = tmp_path / "first.py"
    script.write_text("rows = [1, 2, 3]\nprint('first')\n_ = open('made.txt', 'w').write('made')")
    ran = cli("exec", str(script), "--session", session_id)
    assert (ran.returncode, ran.stdout) == (0, "first\n"), ran.stderr
    assert ran.stderr.splitlines() == [  # a file the cell wrote comes back, as from any run
        "companion: 1 file(s) written to companion-output/: made.txt",
        f"companion: cell 1 of session {session_id}",
    ]
    again = cli("exec", "-", "--session", session_id, stdin="print(sum(rows))\nlen(rows)")
    assert (again.returncode, again.stdout) == (0, "6\n3\n"), again.stderr
    as_json = cli("exec", "-", "--session", session_id, "--json", stdin="rows")
    assert json.loads(as_json.stdout)["execution_count"] == 3
    failed = cli("exec", "-", "--session", session_id, stdin="raise SystemExit(4)")
    assert failed.returncode == 4

    local = tmp_path / "data.bin"
    local.write_bytes(bytes(range(256)))
    uploaded = cli("sessions", "upload", session_id, str(local), "--as", "in/data.bin")
    assert uploaded.returncode == 0, uploaded.stderr
    listing = json.loads(cli("sessions", "files", session_id, "--json").stdout)
    assert listing == {
        "files": [
            {"path": "in/data.bin", "size_bytes": 256, "mime_type": "application/octet-stream"},
            {"path": "made.txt", "size_bytes": 4, "mime_type": "text/plain"},
        ],
        "truncated": False,
    }
    assert "in/data.bin" in cli("sessions", "files", session_id).stdout

    back = cli("sessions", "download", session_id, "in/data.bin", "--out", "back.bin")
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "back.bin").read_bytes() == bytes(range(256))
    assert cli("sessions", "download", session_id, "made.txt").returncode == 0
    assert (tmp_path / "made.txt").read_text() == "made"
    (tmp_path / "made.txt").write_text("mine")
    refused = cli("sessions", "download", session_id, "made.txt")
    assert refused.returncode == 2
    assert "made.txt exists; not replaced (--overwrite replaces it)" in refused.stderr
    assert (tmp_path / "made.txt").read_text() == "mine"
    replaced = cli("sessions", "download", session_id, "made.txt", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (tmp_path / "made.txt").read_text() == "made"
    assert cli("sessions", "download", session_id, "made.txt", "--out", "-").stdout == "made"
    missing = cli("sessions", "download", session_id, "nope.txt")
    assert missing.returncode == 1
    assert "No file 'nope.txt'" in missing.stderr

    foreign = cli("sessions", "show", session_id, key="other")
    assert foreign.returncode == 1
    assert f"No session '{session_id}'" in foreign.stderr

    closed = cli("sessions", "close", session_id)
    assert (closed.returncode, closed.stdout) == (0, f"closed {session_id}\n"), closed.stderr
    twice = cli("sessions", "close", session_id)
    assert twice.returncode == 1
    assert f"companion: No session '{session_id}'." in twice.stderr
    after = cli("exec", str(script), "--session", session_id)
    assert after.returncode == 1
    assert "Traceback" not in after.stderr


def test_exec_session_needs_url(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    done = subprocess.run(
        [COMPANION, "exec", "-", "--session", "ses_x"],
        env=clean,
        input="1",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--session needs --url" in done.stderr
