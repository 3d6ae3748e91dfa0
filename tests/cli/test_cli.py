"""The `companion` command as a user runs it: a real subprocess of the installed script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from tests._services import free_port, wait_for_port

COMPANION = str(Path(sys.executable).parent / "companion")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    return subprocess.run(
        [COMPANION, *args], capture_output=True, text=True, env={**clean, **(env or {})}, timeout=60
    )


def test_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("companion 0.")


def test_unknown_option_prints_usage() -> None:
    done = _run("--bogus")
    assert done.returncode == 2
    assert "Usage: companion" in done.stderr


def test_invalid_setting_is_one_line_and_exit_2() -> None:
    done = _run("config", "show", env={"COMPANION_PORT": "http"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "companion: invalid setting COMPANION_PORT='http': "
        "Input should be a valid integer, unable to parse string as an integer"
    ]
    assert "Traceback" not in done.stderr


def test_config_show_json_masks_secrets() -> None:
    done = _run("config", "show", "--json", env={"COMPANION_REDIS_URL": "redis://:pw@h:6379/0"})
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["redis_url"] == "redis://:***@h:6379/0"
    assert "pw@" not in done.stdout


def test_doctor_reports_every_layer_as_json() -> None:
    done = _run("doctor", "--json")
    assert done.returncode == 0, done.stderr
    findings = {row["name"]: row for row in json.loads(done.stdout)}
    assert findings["python"]["status"] == "ok"
    assert {"namespaces (bubblewrap)", "seccomp", "landlock", "rlimits"} <= findings.keys()
    assert findings["redis"]["status"] == "off"


def test_doctor_fails_when_a_configured_service_is_down() -> None:
    done = _run("doctor", env={"COMPANION_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == 1
    assert "redis" in done.stdout


@pytest.mark.slow
def test_serve_answers_livez_and_readyz(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env["COMPANION_DATA_DIR"] = str(tmp_path / "data")
    process = subprocess.Popen(
        [COMPANION, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for_port(port, timeout_s=30), "companion serve did not listen"
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/livez").json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert (tmp_path / "data").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    # uvicorn re-raises the captured SIGTERM after a graceful shutdown.
    assert process.returncode in (0, -signal.SIGTERM)
    assert b"Application shutdown complete" in stderr
    assert b"no API keys yet" in stderr  # the first-run hint


@pytest.mark.sandbox
def test_exec_runs_a_file_and_returns_its_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text("import math\nprint(math.factorial(10))\nraise SystemExit(3)")
    done = _run("exec", str(script))
    assert done.stdout == "3628800\n"
    assert done.returncode == 3


@pytest.mark.sandbox
def test_exec_json_reports_a_timeout(tmp_path: Path) -> None:
    script = tmp_path / "loop.js"
    script.write_text("while (true) {}")
    done = _run("exec", str(script), "--json", "--wall-time-ms", "300", "--cpu-time-ms", "200")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "timeout"
    assert result["language"] == "javascript"


@pytest.mark.sandbox
def test_exec_sends_files_prints_the_value_and_writes_returned_files(tmp_path: Path) -> None:
    script = tmp_path / "chart.py"
    script.write_text(
        "import matplotlib.pyplot as plt\n"
        "rows = open('numbers.txt').read().split()\n"
        "plt.plot([int(r) for r in rows])\n"
        "open('doubled.txt', 'w').write(' '.join(str(2 * int(r)) for r in rows))\n"
        "len(rows)"
    )
    data = tmp_path / "numbers.txt"
    data.write_text("1 2 3")
    out = tmp_path / "out"
    done = _run("exec", str(script), "--file", f"numbers.txt={data}", "--out-dir", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3\n"
    assert f"2 file(s) written to {out}/: doubled.txt, figure-1.png" in done.stderr
    assert (out / "doubled.txt").read_text() == "2 4 6"
    assert (out / "figure-1.png").read_bytes().startswith(b"\x89PNG")


def test_exec_unknown_language_is_a_usage_error(tmp_path: Path) -> None:
    script = tmp_path / "x.txt"
    script.write_text("x")
    done = _run("exec", str(script), "--language", "cobol")
    assert done.returncode == 2
    assert "Unknown language 'cobol'" in done.stderr


def test_keys_create_list_revoke_round_trip(tmp_path: Path) -> None:
    env = {"COMPANION_DATA_DIR": str(tmp_path / "data")}
    created = _run("keys", "create", "--tenant", "acme", "--scopes", "execute,tools", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("cmp_")
    assert "cannot be shown again" in created.stderr
    key_id = token.split("_")[1]
    listed = json.loads(_run("keys", "list", "--json", env=env).stdout)
    assert [(row["key_id"], row["tenant"], row["scopes"]) for row in listed] == [
        (key_id, "acme", ["execute", "tools"])
    ]
    assert token not in _run("keys", "list", "--json", env=env).stdout
    assert _run("keys", "revoke", key_id, env=env).returncode == 0
    assert json.loads(_run("keys", "list", "--json", env=env).stdout)[0]["revoked_at"]
    missing = _run("keys", "revoke", "0123456789ab", env=env)
    assert missing.returncode == 1
    assert "No API key" in missing.stderr


def test_keys_create_refuses_bad_input(tmp_path: Path) -> None:
    env = {"COMPANION_DATA_DIR": str(tmp_path / "data")}
    for args in (["--tenant", "Bad", "--scopes", "tools"], ["--tenant", "ok", "--scopes", "root"]):
        done = _run("keys", "create", *args, env=env)
        assert done.returncode == 2
        assert done.stderr.startswith("companion: Invalid")
    expiry = _run(
        "keys", "create", "--tenant", "ok", "--scopes", "tools", "--expires-in", "soon", env=env
    )
    assert expiry.returncode == 2
    assert "--expires-in" in expiry.stderr
