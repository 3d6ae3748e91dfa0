"""`companion tools list|call`: the service's tools from the command line (`companion mcp` serves them).

The same registry as the service (`register_builtins`), with this machine's sandbox and knowledge
base behind `run_code` and `search_knowledge`, each started on the first call that needs it (a
sandbox pool costs hundreds of milliseconds to start; `tools list` never pays it). Local calls act
as tenant `default`, the one `companion ingest` and `companion search` use, and need no scopes:
the caller is the machine's own user.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

from companion.cli._knowledge import TENANT
from companion.cli._remote import ApiKeyOption, UrlOption, remote_call

if TYPE_CHECKING:
    from companion.config import Settings
    from companion.execution import Executor
    from companion.knowledge import KnowledgeBase
    from companion.tools import ToolRegistry

__all__ = ["LocalSubsystems", "app", "local_registry"]

app = typer.Typer(help="List and call the tools.", no_args_is_help=True)


class LocalSubsystems:
    """This machine's sandbox pool and knowledge base, started on first use, closed by `aclose`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._executor: Executor | None = None
        self._knowledge: KnowledgeBase | None = None
        # One lock each: a search need not wait for a sandbox pool to start.
        self._executor_lock = asyncio.Lock()
        self._knowledge_lock = asyncio.Lock()

    async def executor(self) -> Executor:
        """The running sandbox pool (`SandboxUnavailable` when this host cannot isolate)."""
        from companion.execution import Executor

        async with self._executor_lock:
            if self._executor is None:
                executor = Executor(self._settings)
                try:
                    await executor.start()
                except BaseException:
                    await executor.close()
                    raise
                self._executor = executor
            return self._executor

    async def knowledge(self) -> KnowledgeBase:
        """The running knowledge base of the data directory (`companion ingest` fills it)."""
        from companion.knowledge import build_knowledge_base, load_embedder

        async with self._knowledge_lock:
            if self._knowledge is None:
                # Loading the embedding model reads ~90 MB: off the event loop.
                embedder = await asyncio.to_thread(load_embedder, self._settings)
                knowledge = build_knowledge_base(self._settings, embedder=embedder, serving=False)
                try:
                    await knowledge.start()
                except BaseException:
                    await knowledge.close()
                    raise
                self._knowledge = knowledge
            return self._knowledge

    async def aclose(self) -> None:
        """Stop whatever was started; the knowledge base is closed even if the pool fails to."""
        executor, self._executor = self._executor, None
        knowledge, self._knowledge = self._knowledge, None
        try:
            if executor is not None:
                await executor.close()
        finally:
            if knowledge is not None:
                await knowledge.close()


def local_registry(settings: Settings, local: LocalSubsystems) -> ToolRegistry:
    """The service's tools with the deployment's settings, over this machine's subsystems."""
    from companion.execution import python_package_names
    from companion.tools import ToolRegistry, register_builtins

    disabled = [name.strip() for name in settings.tools_disabled.split(",") if name.strip()]
    registry = ToolRegistry(
        cache_ttl_s=settings.tools_cache_ttl_s,
        default_timeout_s=settings.tools_default_timeout_s,
        max_threads=settings.tools_pool_size,
        max_concurrency=settings.tools_max_concurrent_calls,
        disabled=disabled,
    )
    register_builtins(
        registry,
        executor=local.executor if settings.execution_enabled else None,
        knowledge=local.knowledge,
        python_packages=python_package_names(settings),
    )
    return registry


@app.command("list")
def list_tools(
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print the tools as a table: name, category, parameters and description."""
    from companion.config import load_settings

    settings = load_settings()
    registry = local_registry(settings, LocalSubsystems(settings))
    infos = registry.list(category)
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
        body = _call_locally(name, arguments)
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    if not body["ok"]:
        raise typer.Exit(1)


def _call_locally(name: str, arguments: str) -> dict[str, Any]:
    from companion.config import load_settings

    # One call runs at most one snippet: a pool of one plain sandbox starts fastest (a snippet
    # importing pandas imports it itself, about as long as preloading it would take).
    settings = load_settings(execution_pool_size=1, execution_data_pool_size=0)
    local = LocalSubsystems(settings)
    registry = local_registry(settings, local)

    async def run() -> dict[str, Any]:
        # The subsystems start and stop on this one loop (their pipes and tasks belong to it).
        try:
            return (await registry.acall(name, arguments, tenant=TENANT)).as_dict()
        finally:
            await local.aclose()

    try:
        return asyncio.run(run())
    finally:
        registry.close()
