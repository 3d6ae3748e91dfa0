"""LangChain: the service's tools as `langchain-core` tools (extra `langchain`).

Install with `pip install 'companion-client[langchain]'`.

    from companion_client import Client
    from companion_client.integrations.langchain import langchain_tools

    tools = langchain_tools(Client(url, api_key=key))     # every tool the key may call
    llm.bind_tools(tools)                                 # or an agent's `tools=`

Each tool is a `BaseTool` whose `args_schema` is the service's JSON input schema itself (a dict:
LangChain then validates nothing itself and shows the model that schema; its converters drop only
the cosmetic `title` keys). `invoke` calls the service with the sync client, `ainvoke` with the
async one (or the sync one on a worker thread). A failed call (the tool's own failure, arguments
the service refused, a missing scope, the service unreachable) raises `ToolException` with the
service's detail, which `handle_tool_error` (True here, so a model reads it and can correct its
call) turns into the tool's answer; pass `handle_tool_error=False` to have it raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from companion_client import CompanionClientError
from companion_client.integrations._source import (
    AsyncToolSource,
    ToolBinding,
    ToolSource,
    bind,
    failure_message,
    missing_extra,
)

try:
    from langchain_core.tools import BaseTool, ToolException
    from pydantic import PrivateAttr  # LangChain's tools are pydantic models
except ImportError as _error:  # pragma: no cover - the extra is installed wherever this is tested
    raise missing_extra("LangChain (langchain-core)", "langchain", _error) from _error

__all__ = ["CompanionTool", "alangchain_tools", "langchain_tools"]

ErrorHandling = bool | str | Callable[[ToolException], str]


class CompanionTool(BaseTool):
    """One tool of the service as a LangChain tool."""

    _binding: ToolBinding = PrivateAttr()

    def __init__(self, binding: ToolBinding, *, handle_tool_error: ErrorHandling = True) -> None:
        super().__init__(
            name=binding.name,
            description=binding.description,
            args_schema=binding.schema(),
            handle_tool_error=handle_tool_error,
        )
        self._binding = binding

    # Only the tool's own arguments in the signatures: LangChain passes `run_manager` and `config`
    # to a `_run` that names them, and a tool may well have an argument called `config`. Nothing
    # comes by position: LangChain refuses string input to a tool with a JSON-schema dict.
    def _run(self, *args: Any, **arguments: Any) -> Any:
        del args
        try:
            return self._binding.call(arguments)
        except CompanionClientError as error:
            raise ToolException(failure_message(error)) from error

    async def _arun(self, *args: Any, **arguments: Any) -> Any:
        del args
        try:
            return await self._binding.acall(arguments)
        except CompanionClientError as error:
            raise ToolException(failure_message(error)) from error


def langchain_tools(
    client: ToolSource,
    *,
    names: Iterable[str] | None = None,
    async_client: AsyncToolSource | None = None,
    handle_tool_error: ErrorHandling = True,
) -> list[BaseTool]:
    """The tools `client` may call (or those in `names`, in that order) as LangChain tools.

    `ainvoke` uses `async_client` when given, else runs the sync call on a worker thread.
    A name the key is not offered raises `ToolNotFound`.
    """
    bindings = bind(client.list_tools(), names, source=client, async_source=async_client)
    return [CompanionTool(b, handle_tool_error=handle_tool_error) for b in bindings]


async def alangchain_tools(
    client: AsyncToolSource,
    *,
    names: Iterable[str] | None = None,
    sync_client: ToolSource | None = None,
    handle_tool_error: ErrorHandling = True,
) -> list[BaseTool]:
    """`langchain_tools` from an async client: `ainvoke` awaits it; `invoke` needs `sync_client`."""
    specs = await client.list_tools()
    bindings = bind(specs, names, source=sync_client, async_source=client)
    return [CompanionTool(b, handle_tool_error=handle_tool_error) for b in bindings]
