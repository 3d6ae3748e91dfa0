"""Each adapter names its extra when its framework is missing; the package itself needs none."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The framework modules each adapter imports, and the extra that installs them.
ADAPTERS = {
    "langchain": (["langchain_core.tools"], "langchain"),
    "llama_index": (
        ["llama_index.core.bridge.pydantic", "llama_index.core.tools"],
        "llama-index",
    ),
    "openai_agents": (["agents", "agents.tool", "agents.tool_context"], "openai-agents"),
}


def _hide(monkeypatch: pytest.MonkeyPatch, modules: list[str]) -> None:
    """Make `modules` unimportable (`None` in `sys.modules`), as if their package were absent."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_a_missing_framework_names_the_extra(adapter: str, monkeypatch: pytest.MonkeyPatch) -> None:
    modules, extra = ADAPTERS[adapter]
    _hide(monkeypatch, modules)
    monkeypatch.delitem(sys.modules, f"companion_client.integrations.{adapter}", raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'companion-client\[{extra}\]'"):
        importlib.import_module(f"companion_client.integrations.{adapter}")


def test_the_package_needs_no_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, [m for modules, _ in ADAPTERS.values() for m in modules])
    for module in ("companion_client.integrations", "companion_client.integrations._source"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    package = importlib.import_module("companion_client.integrations")
    assert package.__all__ == sorted(package.__all__)
    assert callable(package.failure_message)


# Refuses and records every connection, then imports the adapters and the frameworks whole.
NO_NETWORK = """
import socket

attempts = []


def refuse(*args, **kwargs):
    attempts.append(args[1:] or args)
    raise OSError("no connection in this test")


socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.getaddrinfo = refuse

import agents
import langchain_core.tools
import llama_index.core

import companion_client.integrations.langchain
import companion_client.integrations.llama_index
import companion_client.integrations.openai_agents

print(attempts)
"""


def test_importing_the_frameworks_opens_no_connection(tmp_path: Path) -> None:
    """llama-index-core sets NLTK and tiktoken up at import from data its wheel ships: checked
    here with every connection refused, from a fresh interpreter and an empty home directory."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
