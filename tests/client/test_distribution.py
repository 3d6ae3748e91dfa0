"""`companion-client` is a distribution of its own: its wheel, installed with its real dependencies
into a fresh venv, holds none of the server and talks to a running service."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests._services import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]
ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
# httpx and what it brings; nothing of the server (FastAPI, pydantic, tantivy, ...).
HTTPX_AND_ITS_OWN = {"anyio", "certifi", "h11", "httpcore", "httpx", "idna", "typing-extensions"}


def _uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".uv" / "bin" / "uv")
    if not Path(found).exists():
        unavailable("uv (make install bootstraps it into .uv/)")
    return found


def _run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPANION_", "VIRTUAL_ENV"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_wheel_installs_alone_and_talks_to_the_service(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, keys = server
    uv = _uv()
    built = _run(uv, "build", "--wheel", "--out-dir", tmp_path / "dist", CLIENT, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("companion_client-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "companion_client/py.typed" in names
    assert not [name for name in names if name.startswith("companion/")]

    interpreter = os.path.realpath(sys.executable)
    venv = tmp_path / "venv"
    made = _run(interpreter, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(uv, "pip", "install", "--python", python, wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    listed = _run(uv, "pip", "list", "--python", python, "--format", "freeze", cwd=tmp_path)
    packages = {line.split("==")[0].lower() for line in listed.stdout.split()}
    assert "companion-client" in packages
    assert packages - {"companion-client"} <= HTTPX_AND_ITS_OWN, packages

    script = f"""
import importlib.util
from companion_client import Client, ValidationFailed
assert importlib.util.find_spec("fastapi") is None
assert importlib.util.find_spec("companion") is None
assert importlib.util.find_spec("pydantic") is None
with Client({url!r}, {keys["agent"]!r}) as client:
    print(client.run("print(6 * 7)").stdout.strip())
    print(client.invoke_tool("add", {{"a": 5, "b": 3}}).output)
    try:
        client.run("x", "cobol")
    except ValidationFailed as error:
        print(error.errors[0].pointer)
"""
    ran = _run(python, "-I", "-c", script, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["42", "8.0", "/language"]


def test_the_client_imports_nothing_of_the_server() -> None:
    """Nothing of the server anywhere; no pydantic in the core (the framework adapters under
    `integrations/`, behind extras, may use what their frameworks are built on)."""
    package = CLIENT / "src" / "companion_client"
    for path in package.rglob("*.py"):
        banned = {"companion", "fastapi"}
        if "integrations" not in path.relative_to(package).parts:
            banned.add("pydantic")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top not in banned, f"{path}: {module}"
