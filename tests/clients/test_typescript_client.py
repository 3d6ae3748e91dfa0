"""The TypeScript client in clients/typescript.

Its types cannot drift from the service: the committed `openapi.json` must be the live app's
schema, and the committed `src/schema.ts` what openapi-typescript (run from node_modules, offline)
makes of it; `make ts-client-schema` regenerates both. Its own tests (Node's test runner) then run
against a real `companion serve` with real API keys.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from companion.keys import KeyRing, SQLiteKeyStore
from tests._services import free_port, unavailable, wait_for_port

COMPANION = str(Path(sys.executable).parent / "companion")
TS_DIR = Path(__file__).resolve().parents[2] / "clients" / "typescript"
REGENERATE = "`make ts-client-schema`"
# Keys the node tests use, by name: (tenant, scopes). Runs that must not share a key's in-flight
# slot (a timed-out run, an aborted stream, the retry test's holder) each have their own.
KEYS = {
    "execute": ("acme", ["execute"]),
    "timeout": ("acme", ["execute"]),
    "abort": ("acme", ["execute"]),
    "retry": ("acme", ["execute"]),
    "tools": ("acme", ["tools"]),
    "knowledge": ("acme", ["knowledge:read", "knowledge:write"]),
    "reader": ("acme", ["knowledge:read"]),
    "admin": ("acme", ["admin"]),
}
# The node tests number more than this; fewer means files went missing (`node --test` passes
# when it finds nothing).
MIN_NODE_TESTS = 25


def _openapi_script() -> ModuleType:
    """clients/typescript/scripts/openapi.py, the one place the schema is dumped from."""
    spec = importlib.util.spec_from_file_location("ts_openapi", TS_DIR / "scripts" / "openapi.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _diff(expected: str, found: str, names: tuple[str, str]) -> str:
    lines = difflib.unified_diff(
        found.splitlines(), expected.splitlines(), *names, lineterm="", n=2
    )
    return "\n".join(list(lines)[:80])


def _node() -> str:
    """The node binary, with the client's dev dependencies installed; else skip (fail in CI)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm (Node 20+) for the TypeScript client: apt install nodejs npm")
    if not (TS_DIR / "node_modules" / ".package-lock.json").is_file():
        unavailable("clients/typescript/node_modules: run `make ts-client` (npm ci)")
    assert node is not None
    return node


def test_committed_openapi_is_the_live_schema() -> None:
    script = _openapi_script()
    expected = script.rendered(script.live_schema())
    committed = (TS_DIR / "openapi.json").read_text(encoding="utf-8")
    if committed != expected:
        pytest.fail(
            f"clients/typescript/openapi.json differs from the service's schema: run {REGENERATE} "
            "(it rewrites openapi.json and src/schema.ts)\n"
            + _diff(expected, committed, ("committed", "live")),
            pytrace=False,
        )


def test_every_ref_of_the_schema_resolves() -> None:
    # A body model's own `#/$defs/...` refs resolve to nothing inside an OpenAPI document (its `#`
    # is the document's root): generators refuse them. Checked here without Node.
    schema = _openapi_script().live_schema()
    refs = set(re.findall(r'"\$ref": "([^"]*)"', json.dumps(schema)))
    assert refs, "the schema has no refs at all: the pattern is wrong"
    components = set(schema["components"]["schemas"])
    dangling = sorted(
        ref
        for ref in refs
        if not ref.startswith("#/components/schemas/")
        or ref.removeprefix("#/components/schemas/") not in components
    )
    assert dangling == []


def test_committed_types_are_generated_from_the_committed_openapi(tmp_path: Path) -> None:
    node = _node()
    generated = tmp_path / "schema.ts"
    done = subprocess.run(
        [node, "node_modules/openapi-typescript/bin/cli.js", "openapi.json", "-o", str(generated)],
        cwd=TS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    expected = generated.read_text(encoding="utf-8")
    committed = (TS_DIR / "src" / "schema.ts").read_text(encoding="utf-8")
    if committed != expected:
        pytest.fail(
            "clients/typescript/src/schema.ts is not what openapi-typescript makes of "
            f"openapi.json: run {REGENERATE}\n"
            + _diff(expected, committed, ("committed", "generated")),
            pytrace=False,
        )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    """A real `companion serve` on a free port, its keys (minted in its key store before it
    starts), and its log file. A key may have one run in flight, so a second one gets a real 429."""
    data_dir = tmp_path_factory.mktemp("ts-client")
    ring = KeyRing(SQLiteKeyStore(data_dir / "keys.sqlite3"))
    try:
        keys = {name: ring.create(tenant, scopes)[1] for name, (tenant, scopes) in KEYS.items()}
    finally:
        ring.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env |= {
        "COMPANION_DATA_DIR": str(data_dir),
        "COMPANION_EXECUTION_POOL_SIZE": "1",
        "COMPANION_EXECUTION_DATA_POOL_SIZE": "1",
        "COMPANION_EXECUTE_MAX_CONCURRENT_PER_KEY": "1",
        "COMPANION_PROFILING_TRACE_REQUESTS": "true",
        "COMPANION_KNOWLEDGE_EMBEDDER": "none",
    }
    port = free_port()
    log = data_dir / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [COMPANION, "serve", "--port", str(port)], env=env, stdout=sink, stderr=sink
        )
    try:
        assert wait_for_port(port, timeout_s=60), (
            "companion serve did not listen:\n" + log.read_text()
        )
        yield f"http://127.0.0.1:{port}", keys, log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _npm(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    assert npm is not None
    return subprocess.run(
        [npm, "run", script],
        cwd=TS_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.sandbox
def test_node_tests_pass_against_a_real_service(
    service: tuple[str, dict[str, str], Path],
) -> None:
    _node()
    url, keys, log = service
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env |= {
        "TS_CLIENT_URL": url,
        "TS_CLIENT_KEYS": json.dumps(keys),
        # npm would otherwise ask the registry whether it is itself up to date.
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    }
    build = _npm("build", env)
    assert build.returncode == 0, "npm run build failed:\n" + build.stdout
    run = _npm("test", env)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    assert run.returncode == 0, f"npm test failed:\n{run.stdout}\n--- service log (end) ---\n{tail}"
    counts = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", run.stdout, re.MULTILINE))
    assert counts.get("fail") == "0", run.stdout
    assert int(counts.get("tests", "0")) >= MIN_NODE_TESTS, run.stdout
    assert counts.get("pass") == counts.get("tests"), run.stdout
