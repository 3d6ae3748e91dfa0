"""`companion sessions ...`: open, inspect and end sessions of a running service; move files.

Sessions live in the service, so every command takes `--url` (and the key, from
`COMPANION_API_KEY`); `companion exec --session ID` runs a cell in one.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer

from companion.cli._remote import ApiKeyOption, connect

__all__ = ["app"]

app = typer.Typer(
    help="Sessions: interpreters that keep their state between cells.", no_args_is_help=True
)

SessionUrlOption = Annotated[
    str,
    typer.Option("--url", help="The service holding the sessions (e.g. http://127.0.0.1:8000)."),
]
SessionId = Annotated[str, typer.Argument(help="The session's id (from `sessions create`).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@app.command("create")
def create(
    url: SessionUrlOption,
    language: Annotated[str, typer.Option("--language", "-l", help="python or javascript.")] = (
        "python"
    ),
    idle_timeout_s: Annotated[
        float | None, typer.Option(help="Seconds without a call before the session ends.")
    ] = None,
    memory_bytes: Annotated[
        int | None, typer.Option(help="Lower the memory limit (for the session's whole life).")
    ] = None,
    wall_time_ms: Annotated[int | None, typer.Option(help="Lower each cell's wall time.")] = None,
    cpu_time_ms: Annotated[int | None, typer.Option(help="Lower each cell's CPU time.")] = None,
    as_json: JsonOption = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Open a session and print its id (`ID=$(companion sessions create --url ...)`)."""
    wanted = {
        "memory_bytes": memory_bytes,
        "wall_time_ms": wall_time_ms,
        "cpu_time_ms": cpu_time_ms,
    }
    limits = {name: value for name, value in wanted.items() if value is not None}
    with connect(url, api_key) as client:
        session = client.create_session(language, limits=limits, idle_timeout_s=idle_timeout_s)
    if as_json:
        _print_json(session.info)
        return
    typer.echo(session.id)
    info = session.info
    typer.echo(
        f"companion: {info['language']} {info['version']} session; it ends after "
        f"{info['idle_timeout_s']:g} s without a call (`companion sessions close {session.id}`)",
        err=True,
    )


@app.command("list")
def list_sessions(
    url: SessionUrlOption, as_json: JsonOption = False, api_key: ApiKeyOption = None
) -> None:
    """The key's tenant's open sessions on the service, oldest first."""
    with connect(url, api_key) as client:
        sessions = client.sessions()
    if as_json:
        _print_json(sessions)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "language", "state", "cells", "idle ends in", title="companion sessions")
    now = time.time()
    for info in sessions:
        left = max(0.0, info["expires_at"] - now)
        table.add_row(
            info["id"],
            info["language"],
            info["state"],
            str(info["execution_count"]),
            f"{left:.0f} s",
        )
    Console().print(table)


@app.command("show")
def show(session_id: SessionId, url: SessionUrlOption, api_key: ApiKeyOption = None) -> None:
    """Print a session's info as JSON (an ended one says why in `ended_reason`)."""
    with connect(url, api_key) as client:
        _print_json(client.session(session_id).info)


@app.command("close")
def close(session_id: SessionId, url: SessionUrlOption, api_key: ApiKeyOption = None) -> None:
    """End a session now (a cell still running is interrupted)."""
    with connect(url, api_key) as client:
        session = client.session(session_id)  # an unknown id is an error, not a quiet no-op
        session.close()
    reason = session.info.get("ended_reason")
    typer.echo(f"{session_id} had already ended: {reason}" if reason else f"closed {session_id}")


@app.command("files")
def files(
    session_id: SessionId,
    url: SessionUrlOption,
    as_json: JsonOption = False,
    api_key: ApiKeyOption = None,
) -> None:
    """List the files of a session's workspace: path, size and type."""
    with connect(url, api_key) as client:
        listing = client.session(session_id).files()
    if as_json:
        rows = [
            {"path": f.path, "size_bytes": f.size_bytes, "mime_type": f.mime_type} for f in listing
        ]
        _print_json({"files": rows, "truncated": listing.truncated})
        return
    for file in listing:
        typer.echo(f"{file.size_bytes:>12}  {file.mime_type:<28}  {file.path}")
    if listing.truncated:
        typer.echo("companion: more files than a listing holds; some are not shown", err=True)


@app.command("upload")
def upload(
    session_id: SessionId,
    local_path: Annotated[Path, typer.Argument(help="The file to send (a regular file).")],
    url: SessionUrlOption,
    name: Annotated[
        str | None, typer.Option("--as", help="Its path in the workspace (default: its name).")
    ] = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Write a local file into a session's workspace (replacing one of the same path)."""
    with connect(url, api_key) as client:
        written = client.session(session_id).upload(local_path, name)
    typer.echo(f"uploaded {local_path} to {written}")


@app.command("download")
def download(
    session_id: SessionId,
    path: Annotated[str, typer.Argument(help="The file's path in the workspace.")],
    url: SessionUrlOption,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where to write it (default: its name, here; - for stdout)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing local file.")] = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Copy a file of a session's workspace here (never over a file, unless --overwrite)."""
    from companion.errors import CompanionError, InvalidInput

    name = PurePosixPath(path).name
    if out is None and name in {"", ".", ".."}:
        raise InvalidInput(f"{path!r} names no file here: say where with --out")
    target = out or Path(name)
    if target.is_dir():  # a folder to put it in, under its own name
        target = target / name
    if str(target) != "-" and target.exists() and not overwrite:  # before fetching it
        raise InvalidInput(f"{target} exists; not replaced (--overwrite replaces it)")
    with connect(url, api_key) as client:
        content = client.session(session_id).download(path)
    if str(target) == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return
    try:
        with target.open("wb" if overwrite else "xb") as handle:
            handle.write(content)
    except FileExistsError:
        raise InvalidInput(f"{target} exists; not replaced (--overwrite replaces it)") from None
    except OSError as exc:
        raise CompanionError(f"cannot write {target}: {exc}") from None
    typer.echo(f"companion: {len(content)} bytes written to {target}", err=True)
