"""LlamaIndex: the service's tools as `llama-index-core` tools (extra `llama-index`).

Install with `pip install 'companion-client[llama-index]'`.

    from companion_client import Client
    from companion_client.integrations.llama_index import llama_index_tools

    tools = llama_index_tools(Client(url, api_key=key))
    FunctionAgent(tools=tools, llm=llm)                   # or any agent taking `BaseTool`s

Each tool is an `AsyncBaseTool` (the kind `FunctionTool` is): `call` uses the sync client, `acall`
the async one (or the sync one on a worker thread). Its metadata gives the service's JSON input
schema as it is, `additionalProperties` and titles included, wherever LlamaIndex reads one
(`get_parameters_dict()`, `to_openai_tool()`, `fn_schema_str`, `fn_schema.model_json_schema()`);
LlamaIndex's own `ToolMetadata` would keep only `type`, `properties`, `required` and `$defs`.

The output is a `ToolOutput` whose `raw_output` is the tool's value and whose text is that value
(JSON unless it is a string). A failed call (the tool's own failure, arguments the service
refused, a missing scope, the service unreachable) is a `ToolOutput` with `is_error` set, the
service's detail as its text and the client's error as its `exception`: what LlamaIndex's agents
make of a tool that raises, without losing the detail.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    from llama_index.core.bridge.pydantic import BaseModel, ConfigDict
    from llama_index.core.tools import AsyncBaseTool, ToolMetadata, ToolOutput
except ImportError as _error:  # pragma: no cover - the extra is installed wherever this is tested
    raise missing_extra("LlamaIndex (llama-index-core)", "llama-index", _error) from _error

__all__ = ["CompanionTool", "SchemaToolMetadata", "allama_index_tools", "llama_index_tools"]


class _ServiceSchema(BaseModel):
    """Stands for a tool's JSON schema where LlamaIndex wants a pydantic model.

    It validates nothing (the service does, with that schema): it only answers
    `model_json_schema()` with the service's schema, for the code that reads a tool's schema there
    (some LLM integrations, tool retrieval).
    """

    model_config = ConfigDict(extra="allow")
    service_schema: ClassVar[dict[str, Any]] = {}

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The service's schema, whatever the options (there is nothing to generate)."""
        return copy.deepcopy(cls.service_schema)


@dataclass
class SchemaToolMetadata(ToolMetadata):
    """`ToolMetadata` that hands out a JSON schema as it was given."""

    parameters: dict[str, Any] = field(default_factory=dict)

    def get_parameters_dict(self) -> dict[str, Any]:
        """The schema itself (LlamaIndex's own keeps only some keys of a model's schema)."""
        return copy.deepcopy(self.parameters)


class CompanionTool(AsyncBaseTool):
    """One tool of the service as a LlamaIndex tool."""

    def __init__(self, binding: ToolBinding) -> None:
        self._binding = binding
        schema = binding.schema()
        model = type(f"{binding.name}_arguments", (_ServiceSchema,), {"service_schema": schema})
        self._metadata = SchemaToolMetadata(
            description=binding.description,
            name=binding.name,
            fn_schema=model,
            parameters=schema,
        )

    @property
    def metadata(self) -> ToolMetadata:
        """The tool's name, description and the service's input schema."""
        return self._metadata

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Call the service with the sync client; a failure is an `is_error` output."""
        arguments = self._arguments(args, kwargs)
        try:
            return self._output(arguments, self._binding.call(arguments))
        except CompanionClientError as error:
            return self._failure(arguments, error)

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Call the service with the async client; a failure is an `is_error` output."""
        arguments = self._arguments(args, kwargs)
        try:
            return self._output(arguments, await self._binding.acall(arguments))
        except CompanionClientError as error:
            return self._failure(arguments, error)

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments, however LlamaIndex passed them: by name (its agents), as one dict, or
        the value of a tool's only argument by position (`call_tool` does that)."""
        if not args:
            return kwargs
        properties = self._binding.input_schema.get("properties") or {}
        if len(args) == 1 and not kwargs:
            (value,) = args
            if isinstance(value, Mapping) and set(value) <= set(properties):
                return dict(value)
            if len(properties) == 1:
                return {next(iter(properties)): value}
        raise TypeError(f"{self._binding.name} takes its arguments by name, or as one dict")

    def _output(self, arguments: dict[str, Any], value: Any) -> ToolOutput:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return ToolOutput(
            tool_name=self._binding.name, content=text, raw_input=arguments, raw_output=value
        )

    def _failure(self, arguments: dict[str, Any], error: CompanionClientError) -> ToolOutput:
        message = failure_message(error)
        return ToolOutput(
            tool_name=self._binding.name,
            content=message,
            raw_input=arguments,
            raw_output=message,
            is_error=True,
            exception=error,
        )


def llama_index_tools(
    client: ToolSource,
    *,
    names: Iterable[str] | None = None,
    async_client: AsyncToolSource | None = None,
) -> list[CompanionTool]:
    """The tools `client` may call (or those in `names`, in that order) as LlamaIndex tools.

    `acall` uses `async_client` when given, else runs the sync call on a worker thread.
    A name the key is not offered raises `ToolNotFound`.
    """
    bindings = bind(client.list_tools(), names, source=client, async_source=async_client)
    return [CompanionTool(b) for b in bindings]


async def allama_index_tools(
    client: AsyncToolSource,
    *,
    names: Iterable[str] | None = None,
    sync_client: ToolSource | None = None,
) -> list[CompanionTool]:
    """`llama_index_tools` from an async client: `acall` awaits it; `call` needs `sync_client`."""
    specs = await client.list_tools()
    bindings = bind(specs, names, source=sync_client, async_source=client)
    return [CompanionTool(b) for b in bindings]
