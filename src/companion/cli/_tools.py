"""`companion tools list|call` and `companion mcp`: the built-in tools from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from companion.cli._remote import ApiKeyOption, UrlOption, remote_call

if TYPE_CHECKING:
    from companion.tools import ToolRegistry

__all__ = ["app", "mcp"]

app = typer.Typer(help="List and call the tools.", no_args_is_help=True)


def _registry() -> ToolRegistry:
    """The built-in tools with the deployment's settings (no sandbox: `run_code` needs the service)."""
    from companion.config import load_settings
    from companion.tools import ToolRegistry, register_builtins

    settings = load_settings()
    disabled = [name.strip() for name in settings.tools_disabled.split(",") if name.strip()]
    registry = ToolRegistry(
        default_timeout_s=settings.tools_default_timeout_s,
        max_threads=settings.tools_pool_size,
        disabled=disabled,
    )
    register_builtins(registry)
    return registry


@app.command("list")
def list_tools(
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print the tools as a table: name, category, parameters and description."""
    infos = _registry().list(category)
    if as_json:
        import orjson

        rows = [
            {"name": i.name, "category": i.category, "description": i.description} for i in infos
        ]
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("tool", "category", "parameters", "description", title="companion tools")
    for info in infos:
        params = ", ".join(info.input_schema.get("properties", {}))
        table.add_row(info.name, info.category, params, info.description.split("\n")[0])
    Console().print(table)


@app.command("call")
def call(
    name: Annotated[str, typer.Argument(help="The tool's name.")],
    arguments: Annotated[str, typer.Argument(help="The arguments as a JSON object.")] = "{}",
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Call a tool and print its result as JSON; a failed call exits 1."""
    import orjson

    if url is not None:
        from companion.errors import InvalidInput

        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the arguments are not valid JSON: {exc}") from None
        body = remote_call(url, api_key, "POST", f"/v1/tools/{name}/invoke", {"arguments": parsed})
    else:
        registry = _registry()
        try:
            body = registry.call(name, arguments, tenant="cli").as_dict()
        finally:
            registry.close()
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    if not body["ok"]:
        raise typer.Exit(1)


def mcp() -> None:
    """Serve the tools over MCP on stdin/stdout (for desktop agents and IDEs)."""
    import anyio

    from companion.tools import serve_mcp_stdio

    registry = _registry()
    try:
        anyio.run(serve_mcp_stdio, registry)
    finally:
        registry.close()
