"""`companion config show|docs`: the effective settings (secrets masked) and the README table."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(help="Inspect the settings.", no_args_is_help=True)


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print the effective settings with passwords masked."""
    from companion.config import ENV_PREFIX, load_settings, masked_settings

    shown = masked_settings(load_settings())
    if as_json:
        import orjson

        typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("setting", "value", title="companion settings")
    for name, value in shown.items():
        table.add_row(f"{ENV_PREFIX}{name.upper()}", "unset" if value is None else str(value))
    Console().print(table)


@app.command("docs")
def docs() -> None:
    """Print the Markdown configuration table the README embeds."""
    from companion.config import settings_markdown_table

    typer.echo(settings_markdown_table())
