"""`companion exec FILE|-`: run a snippet in the sandbox, as the service would."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from companion.cli._remote import ApiKeyOption, UrlOption, connect, remote_call

if TYPE_CHECKING:
    from companion_client import Execution

__all__ = ["execute"]

_BY_SUFFIX = {".py": "python", ".js": "javascript", ".mjs": "javascript"}
_EXIT_NOT_OK = 1
_IMAGE_SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg", "image/svg+xml": ".svg"}


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
    files: Annotated[
        list[str] | None,
        typer.Option(
            "--file",
            "-f",
            help="A file for the run's directory: PATH, or NAME=PATH to name it (repeatable).",
        ),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option(help="Where returned files and figures are written (made when needed)."),
    ] = Path("companion-output"),
    figure_format: Annotated[
        str, typer.Option(help="png or svg: how matplotlib figures come back.")
    ] = "png",
    overwrite: Annotated[
        bool, typer.Option(help="Replace files already in --out-dir (refused otherwise).")
    ] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            help="Run as the next cell of this session of --url's service (`companion sessions "
            "create`): its variables and files persist; its language is used.",
        ),
    ] = None,
) -> None:
    """Run FILE in a sandbox; exit with its exit code (1 for timeouts and limits).

    The value of the last expression is printed after the output; returned files and figures
    are written under --out-dir, and the command says where.
    """
    from companion_client import Execution, InputFile

    from companion.config import load_settings
    from companion.errors import InvalidInput
    from companion.execution import ExecutionRequest, SyncExecutor

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
    sent = [_input_file(InputFile, spec) for spec in files or ()]
    live = None if as_json else _print_live  # output shows as the run prints it
    if session is not None:
        if url is None:
            raise InvalidInput("--session needs --url: sessions live in a running service")
        if memory_bytes is not None:
            raise InvalidInput("a session's memory limit is set by `companion sessions create`")
        cell_limits = {k: v for k, v in limits.items() if v is not None}
        raw = _cell_run(url, api_key, session, code, sent, cell_limits, figure_format, live)
        _finish(Execution.from_json(raw), raw, as_json, out_dir, overwrite=overwrite)
        return
    request = ExecutionRequest.model_validate(
        {
            "language": language,
            "code": code,
            "files": [item.to_json() for item in sent] or None,
            "figure_format": figure_format,
            "limits": {k: v for k, v in limits.items() if v is not None},
        }
    )
    if url is not None:
        body = request.model_dump(mode="json", exclude_none=True)
        raw = _remote_run(url, api_key, body, live)
    else:
        # One plain sandbox: a run importing numpy or pandas imports them itself (about as long
        # as starting a sandbox with them preloaded would take).
        settings = load_settings(execution_pool_size=1, execution_data_pool_size=0)
        with SyncExecutor(settings) as executor:
            on_output = (lambda event: live(event.kind, event.text)) if live else None
            raw = executor.run(request, on_output=on_output).model_dump(mode="json")
    _finish(Execution.from_json(raw), raw, as_json, out_dir, overwrite=overwrite)


def _finish(
    result: Execution, raw: dict[str, Any], as_json: bool, out_dir: Path, *, overwrite: bool
) -> None:
    """Print the result (the output was shown as it came) and exit with the run's code."""
    if as_json:
        typer.echo(json.dumps(raw, indent=2))
    else:
        _show(result, out_dir, overwrite=overwrite)
        if result.execution_count is not None:
            typer.echo(
                f"companion: cell {result.execution_count} of session {result.session_id}", err=True
            )
        if result.session_ended:
            typer.echo(f"companion: the session ended: {result.session_ended}", err=True)
    if result.status != "ok":
        raise typer.Exit(result.exit_code or _EXIT_NOT_OK)


def _print_live(kind: str, text: str) -> None:
    stream = sys.stdout if kind == "stdout" else sys.stderr
    if kind in {"stdout", "stderr"}:
        stream.write(text)
        stream.flush()


def _remote_run(url: str, api_key: str | None, body: dict[str, Any], live: Any) -> dict[str, Any]:
    """`POST /v1/execute`, streamed when output is shown live; the whole result's JSON."""
    if live is None:
        raw: dict[str, Any] = remote_call(url, api_key, "POST", "/v1/execute", body)
        return raw
    with connect(url, api_key) as client:
        code = body.pop("code")
        language = body.pop("language")
        return _follow(client.run_stream(code, language, **body), live)


def _cell_run(
    url: str,
    api_key: str | None,
    session_id: str,
    code: str,
    files: list[Any],
    limits: dict[str, int],
    figure_format: str,
    live: Any,
) -> dict[str, Any]:
    """A cell of the session, streamed when output is shown live; the whole result's JSON."""
    with connect(url, api_key) as client:
        session = client.session(session_id)
        if live is None:
            return session.run(code, files=files, limits=limits, figure_format=figure_format).raw
        events = session.run_stream(code, files=files, limits=limits, figure_format=figure_format)
        return _follow(events, live)


def _follow(events: Iterable[Any], live: Any) -> dict[str, Any]:
    """Show a streamed run's output as it comes; the `done` event's whole result."""
    from companion.errors import CompanionError

    for event in events:
        if event.execution is not None:
            raw: dict[str, Any] = event.execution.raw
            return raw
        live(event.kind, event.text)
    raise CompanionError("the service ended the stream without a result")


def _input_file(make: Any, spec: str) -> Any:
    """`--file PATH` or `--file NAME=PATH`."""
    name, _, path = spec.rpartition("=")
    return make.from_path(path, name or None)


def _show(result: Any, out_dir: Path, *, overwrite: bool) -> None:
    """The results as a terminal can show them (the output was shown as it came); files and
    images go to `out_dir`. A file that cannot be saved is named, and the others still are."""
    from companion_client import LocalFileRefused, save_file

    for shown in result.results:
        if shown.mime_type == "text/plain" and shown.kind != "figure":
            sys.stdout.write(shown.data + "\n")
    pending = [(f.path, f.content) for f in result.files]
    for image in result.images():
        suffix = _IMAGE_SUFFIX.get(image.mime_type, ".bin")
        pending.append((f"{image.kind}-{image.output}{suffix}", image.content()))
    written, refused = [], []
    for path, content in pending:
        try:
            written.append(save_file(out_dir, path, content, overwrite=overwrite))
        except LocalFileRefused as exc:
            refused.append(str(exc))
    if written:
        names = ", ".join(str(path.relative_to(out_dir.resolve())) for path in written)
        typer.echo(f"companion: {len(written)} file(s) written to {out_dir}/: {names}", err=True)
    for reason in refused:
        hint = " (--overwrite replaces it)" if "exists" in reason else ""
        typer.echo(f"companion: {reason}{hint}", err=True)
    if result.files_truncated or result.results_truncated:
        typer.echo("companion: some files or results passed their caps and were left out", err=True)
    if result.status not in {"ok", "runtime_error"}:
        typer.echo(f"companion: {result.status.replace('_', ' ')}", err=True)
