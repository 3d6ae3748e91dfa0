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
    An untyped node (`Any`) becomes a union of JSON types, since strict mode wants a `type` on
    every node: strings, numbers, booleans, null and arrays of these (recursively). Strict mode
    cannot describe an object with free-form keys, so such values cannot be sent in strict mode.
    """
    out = copy.deepcopy(schema)
    name = "JsonValue"
    while name in out.get("$defs", {}):  # never replace a definition of the tool's own
        name = f"_{name}"
    export = _StrictExport(f"#/$defs/{name}")
    _strict(out, export)
    if export.used:
        out.setdefault("$defs", {})[name] = {"anyOf": _json_value_branches(export.ref)}
    return out


class _StrictExport:
    """One schema's export: where the JSON-value union lives, and whether an `Any` needed it."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.used = False


# Any of these makes a node typed (or a composition of typed nodes); without any of them it is `Any`.
_TYPING_KEYWORDS = ("type", "anyOf", "oneOf", "allOf", "not", "$ref", "enum", "const", "properties")


def _json_value_branches(ref: str) -> list[dict[str, Any]]:
    return [
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": ref}},
    ]


def _strict(node: Any, export: _StrictExport) -> None:
    if isinstance(node, list):
        for item in node:
            _strict(item, export)
        return
    if not isinstance(node, dict):
        return
    for keyword in _UNSUPPORTED:
        node.pop(keyword, None)
    if not any(keyword in node for keyword in _TYPING_KEYWORDS):
        export.used = True
        node["anyOf"] = _json_value_branches(export.ref)
        return
    for key, value in node.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            # Maps of names to schemas: a property named `title` is not the keyword `title`.
            for child in value.values():
                _strict(child, export)
        elif isinstance(value, dict | list):
            _strict(value, export)
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
