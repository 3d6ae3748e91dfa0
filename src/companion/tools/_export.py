"""Tool definitions in the shapes OpenAI (strict), Anthropic and MCP expect."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic_core import to_jsonable_python

from companion.tools._models import ToolInfo

__all__ = [
    "anthropic_tool",
    "jsonable",
    "mcp_output_schema",
    "mcp_tool",
    "openai_tool",
    "strict_schema",
]

# Keywords OpenAI's strict mode does not accept; they only inform, so dropping them is safe.
_UNSUPPORTED = ("default", "title", "examples")


def jsonable(value: Any) -> Any:
    """`value` in its JSON form (tuples to lists, dates to ISO strings, models to dicts)."""
    return to_jsonable_python(value)


def openai_tool(info: ToolInfo, api: Literal["chat", "responses"] = "chat") -> dict[str, Any]:
    """A strict function tool: Chat Completions nests it under `function`, Responses does not."""
    function = {
        "name": info.name,
        "description": info.description,
        "parameters": strict_schema(info.input_schema),
        "strict": True,
    }
    if api == "responses":
        return {"type": "function", **function}
    return {"type": "function", "function": function}


def anthropic_tool(info: ToolInfo) -> dict[str, Any]:
    """An Anthropic Messages API tool."""
    return {"name": info.name, "description": info.description, "input_schema": info.input_schema}


def mcp_tool(info: ToolInfo) -> dict[str, Any]:
    """An MCP `tools/list` entry (camelCase, as on the wire)."""
    tool: dict[str, Any] = {
        "name": info.name,
        "title": info.name.replace("_", " ").capitalize(),
        "description": info.description,
        "inputSchema": info.input_schema,
        "annotations": {
            "readOnlyHint": info.read_only,
            "destructiveHint": not info.read_only,
            "idempotentHint": info.idempotent,
            "openWorldHint": False,
        },
    }
    output = mcp_output_schema(info)
    if output is not None:
        tool["outputSchema"] = output
    return tool


def mcp_output_schema(info: ToolInfo) -> dict[str, Any] | None:
    """MCP wants an object at the root: other results are wrapped as `{"result": ...}`."""
    schema = info.output_schema
    if schema is None:
        return None
    if schema.get("type") == "object":
        return schema
    defs = schema.get("$defs")
    inner = {k: v for k, v in schema.items() if k != "$defs"}
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
    }
    if defs:
        wrapped["$defs"] = defs
    return wrapped


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy that meets OpenAI's strict rules.

    Every object gets `additionalProperties: false` and lists every property in `required`; a
    property that was optional becomes nullable (our validator reads null as "use the default").
    """
    out = copy.deepcopy(schema)
    _strict(out)
    return out


def _strict(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _strict(item)
        return
    if not isinstance(node, dict):
        return
    for keyword in _UNSUPPORTED:
        node.pop(keyword, None)
    properties = node.get("properties")
    if node.get("type") == "object" or properties is not None:
        properties = properties or {}
        required = set(node.get("required", ()))
        for name, prop in properties.items():
            if name not in required:
                _make_nullable(prop)
        node["properties"] = properties
        node["required"] = list(properties)
        node["additionalProperties"] = False
    for key, value in node.items():
        if key == "properties":
            for prop in value.values():
                _strict(prop)
        elif isinstance(value, dict | list):
            _strict(value)


def _make_nullable(prop: dict[str, Any]) -> None:
    if _is_nullable(prop):
        return
    kind = prop.get("type")
    if isinstance(kind, str) and "enum" not in prop:
        prop["type"] = [kind, "null"]
    elif isinstance(kind, list):
        prop["type"] = [*kind, "null"]
    else:
        branch = {k: prop.pop(k) for k in builtin_keys(prop) if k != "description"}
        prop["anyOf"] = [branch, {"type": "null"}]


def builtin_keys(prop: dict[str, Any]) -> list[str]:
    """Keys of `prop` that describe its type (all but annotations)."""
    return [key for key in prop if key not in ("description", "title", "default")]


def _is_nullable(prop: dict[str, Any]) -> bool:
    kind = prop.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(
        isinstance(branch, dict) and branch.get("type") == "null"
        for branch in prop.get("anyOf", ())
    )
