"""Entry point: the Typer app, its sub-apps, and the one place settings errors become exit code 2."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from companion import __version__
from companion.cli import _config, _doctor, _serve

__all__ = ["app", "main"]

EXIT_BAD_SETTINGS = 2

app = typer.Typer(
    name="companion",
    help="Companion BaaS: sandboxed code, typed tools and knowledge search for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(_serve.serve)
app.command("doctor")(_doctor.doctor)
app.add_typer(_config.app, name="config")


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
    """Run the CLI; a rejected setting prints one line and exits 2, never a traceback."""
    from companion.errors import ConfigError

    try:
        app(standalone_mode=True)
    except ConfigError as exc:
        for line in exc.details.get("errors", [exc.message]):
            print(f"companion: {line}", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTINGS)
