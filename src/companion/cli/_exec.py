"""`companion exec FILE|-`: run a snippet in the sandbox, as the service would."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from companion.cli._remote import ApiKeyOption, UrlOption, remote_call

__all__ = ["execute"]

_BY_SUFFIX = {".py": "python", ".js": "javascript", ".mjs": "javascript"}
_EXIT_NOT_OK = 1


def execute(
    source: Annotated[str, typer.Argument(help="File to run, or `-` for standard input.")],
    language: Annotated[
        str | None, typer.Option("--language", "-l", help="python or javascript (default: suffix).")
    ] = None,
    wall_time_ms: Annotated[int | None, typer.Option(help="Lower the wall-time limit.")] = None,
    cpu_time_ms: Annotated[int | None, typer.Option(help="Lower the CPU-time limit.")] = None,
    memory_bytes: Annotated[int | None, typer.Option(help="Lower the memory limit.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole result as JSON.")
    ] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Run FILE in a sandbox; exit with its exit code (1 for timeouts and limits)."""
    from companion.config import load_settings
    from companion.errors import InvalidInput
    from companion.execution import ExecutionRequest, ExecutionResult, SyncExecutor

    if source == "-":
        code = sys.stdin.read()
        language = language or "python"
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"{source}: no such file")
        code = path.read_text(encoding="utf-8", errors="surrogateescape")
        language = language or _BY_SUFFIX.get(path.suffix, "python")
    limits = {
        "wall_time_ms": wall_time_ms,
        "cpu_time_ms": cpu_time_ms,
        "memory_bytes": memory_bytes,
    }
    request = ExecutionRequest.model_validate(
        {
            "language": language,
            "code": code,
            "limits": {k: v for k, v in limits.items() if v is not None},
        }
    )
    if url is not None:
        raw = remote_call(url, api_key, "POST", "/v1/execute", request.model_dump(mode="json"))
        result = ExecutionResult.model_validate(raw)
    else:
        with SyncExecutor(load_settings(execution_pool_size=1)) as executor:
            result = executor.run(request)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.status not in {"ok", "runtime_error"}:
            typer.echo(f"companion: {result.status.replace('_', ' ')}", err=True)
    if result.status != "ok":
        raise typer.Exit(result.exit_code or _EXIT_NOT_OK)
