"""`companion doctor`: what this host offers and what the configured service would use."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

import typer

__all__ = ["doctor"]

Status = Literal["ok", "missing", "off", "fail"]
_MIN_PYTHON = (3, 11)
_NODE_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class Finding:
    """One row of the doctor's table."""

    area: str
    name: str
    status: Status
    detail: str


def _python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info[:2] >= _MIN_PYTHON
    return Finding("runtime", "python", "ok" if ok else "fail", f"{version} at {sys.executable}")


def _node() -> Finding:
    binary = shutil.which("node")
    if binary is None:
        return Finding("runtime", "node", "missing", "not on PATH: the `node` runtime is off")
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, timeout=_NODE_TIMEOUT_S, check=True, env={}
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Finding("runtime", "node", "fail", str(exc))
    return Finding("runtime", "node", "ok", f"{done.stdout.decode().strip()} at {binary}")


def _isolation() -> list[Finding]:
    from companion.config import load_settings
    from companion.execution import SandboxUnavailable, choose_sandbox_mode, probe_isolation

    layers = probe_isolation()
    findings = [
        Finding("sandbox", layer.name, "ok" if layer.available else "missing", layer.detail)
        for layer in layers
    ]
    settings = load_settings()
    try:
        mode = choose_sandbox_mode(settings, layers)
    except SandboxUnavailable as exc:
        return [*findings, Finding("sandbox", "sandbox mode", "fail", exc.message)]
    status: Status = "fail" if mode == "none" else "ok"  # `none` runs snippets unisolated
    first = settings.execution_sandbox_first_uid
    user = f"uids {first} + n, one per sandbox" if os.geteuid() == 0 else "the service's uid"
    return [
        *findings,
        Finding("sandbox", "sandbox mode", status, f"{mode}; snippets run as {user}"),
    ]


def _dependencies() -> list[Finding]:
    from companion.api._dependencies import dependency_checks
    from companion.config import load_settings
    from companion.errors import CompanionError

    checks = dependency_checks(load_settings())
    findings = [
        Finding("service", name, "off", "not configured: embedded default in use")
        for name in ("redis", "postgres")
        if name not in checks
    ]

    async def run(name: str) -> Finding:
        try:
            await checks[name]()
        except CompanionError as exc:
            return Finding("service", name, "fail", exc.message)
        return Finding("service", name, "ok", "reachable")

    async def run_all() -> list[Finding]:
        return list(await asyncio.gather(*(run(name) for name in checks)))

    return findings + asyncio.run(run_all())


def _knowledge() -> Finding:
    from companion.config import load_settings
    from companion.knowledge import ModelDirectory, build_knowledge_base

    async def check() -> str:
        settings = load_settings()
        source = ModelDirectory(settings)
        kb = build_knowledge_base(
            settings, embedder=source.load(), serving=False, embedder_source=source
        )
        await kb.start()
        try:
            return await kb.health()
        finally:
            await kb.close()

    from companion.knowledge import StoreInUse

    try:
        detail = asyncio.run(check())
    except StoreInUse as exc:
        # A running service holds the embedded store: that is the healthy case, not a failure.
        return Finding("service", "knowledge", "ok", f"in use by a running service: {exc.message}")
    except Exception as exc:
        return Finding("service", "knowledge", "fail", str(exc))
    # BM25 always works; vector search missing or degraded is a warning, not a failure.
    degraded = "WARNING" in detail or "vector/hybrid search off" in detail
    return Finding("service", "knowledge", "missing" if degraded else "ok", detail)


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Check Python, Node, sandbox layers and configured services; exit 1 when something fails."""
    findings = [_python(), _node(), *_isolation(), *_dependencies(), _knowledge()]
    if as_json:
        import orjson

        typer.echo(orjson.dumps([asdict(f) for f in findings], option=orjson.OPT_INDENT_2).decode())
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        colours = {"ok": "green", "missing": "yellow", "off": "dim", "fail": "red"}
        table = Table("area", "check", "status", "detail", title="companion doctor")
        for f in findings:
            table.add_row(f.area, f.name, f"[{colours[f.status]}]{f.status}[/]", escape(f.detail))
        Console().print(table)
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(1)
