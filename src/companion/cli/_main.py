"""Entry point: the Typer app, its sub-apps, and the one place settings errors become exit code 2."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from companion import __version__
from companion.cli import (
    _bench,
    _config,
    _demo,
    _doctor,
    _exec,
    _keys,
    _knowledge,
    _mcp,
    _models,
    _serve,
    _sessions,
    _tools,
)

__all__ = ["app", "main"]

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

app = typer.Typer(
    name="companion",
    help="Companion BaaS: sandboxed code, typed tools and knowledge search for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(_serve.serve)
app.command("doctor")(_doctor.doctor)
app.command("bench")(_bench.bench)
app.command("demo")(_demo.demo)
app.command("exec")(_exec.execute)
app.command("ingest")(_knowledge.ingest)
app.command("search")(_knowledge.search)
app.command("reindex")(_knowledge.reindex)
app.command("eval-retrieval")(_knowledge.eval_retrieval)
app.add_typer(_config.app, name="config")
app.add_typer(_keys.app, name="keys")
app.add_typer(_tools.app, name="tools")
app.add_typer(_mcp.app, name="mcp")
app.add_typer(_models.app, name="models")
app.add_typer(_sessions.app, name="sessions")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"companion {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Companion BaaS command line."""


def main() -> None:
    """Run the CLI; an error prints one clear line per problem and never a traceback.

    Rejected settings and invalid input exit 2 (like a usage error); other failures exit 1.
    """
    from companion.errors import CompanionError, ConfigError, InvalidInput

    try:
        app(standalone_mode=True)
    except CompanionError as exc:
        for line in exc.details.get("errors", [exc.message]):
            print(f"companion: {line}", file=sys.stderr)
        bad_input = isinstance(exc, ConfigError | InvalidInput)
        sys.exit(EXIT_BAD_INPUT if bad_input else EXIT_FAILURE)
    except Exception as exc:
        # Imported only now: `companion_client` loads httpx, which most commands never need.
        import httpx
        from companion_client import BadRequest, CompanionClientError, LocalFileRefused

        if isinstance(exc, CompanionClientError):
            # A remote command: the service's problem (its `detail`), a local file the client
            # would not send or save, or a service it could not reach (`url: ErrorName: why`).
            print(f"companion: {exc}", file=sys.stderr)
            bad_input = isinstance(exc, BadRequest | LocalFileRefused)
            sys.exit(EXIT_BAD_INPUT if bad_input else EXIT_FAILURE)
        if not isinstance(exc, httpx.HTTPError):
            raise
        # httpx raised by a command that talks HTTP without the client.
        try:
            where = f"{exc.request.url}: "
        except RuntimeError:  # an error raised before any request was made
            where = ""
        print(f"companion: {where}{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
