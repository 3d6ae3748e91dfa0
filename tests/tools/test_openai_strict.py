"""Every exported tool meets OpenAI's documented strict-mode rules (one invalid tool fails a request).

The rules, from OpenAI's Structured Outputs guide ("Supported schemas"), checked node by node:
the root is an object (never `anyOf`); every object has `additionalProperties: false` and lists every
property in `required`; an optional parameter is nullable instead of omitted; every node has a
`type` (or is an `anyOf` of such nodes, or a `$ref` to one in the root's `$defs`); only the supported
keywords appear, each on a type it applies to; at most 10 levels of nesting, 5,000 properties and
1,000 enum values.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from companion.tools import ToolRegistry, register_builtins

_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
_ANY_NODE = {"type", "description", "enum", "const", "anyOf", "$ref"}
_BY_TYPE = {
    "string": {"pattern", "format"},
    "number": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "integer": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties"},
    "boolean": set(),
    "null": set(),
}
_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_DEPTH = 10
_MAX_PROPERTIES = 5000
_MAX_ENUM_VALUES = 1000


class _Checker:
    """Walks one `parameters` schema and collects every broken rule, with where it broke."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.problems: list[str] = []
        self.properties = 0
        self.resolving: set[str] = set()

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def check_root(self) -> None:
        if "anyOf" in self.root or self.root.get("type") != "object":
            self.fail("$", "the root must be an object, not anyOf")
        for name, definition in self.root.get("$defs", {}).items():
            self.node(definition, f"$defs.{name}", depth=1)
        self.node({k: v for k, v in self.root.items() if k != "$defs"}, "$", depth=0)
        if self.properties > _MAX_PROPERTIES:
            self.fail("$", f"{self.properties} properties (at most {_MAX_PROPERTIES})")

    def node(self, node: Any, where: str, depth: int) -> None:
        if not isinstance(node, dict):
            self.fail(where, f"a schema must be an object, got {node!r}")
            return
        if depth > _MAX_DEPTH:
            self.fail(where, f"nested deeper than {_MAX_DEPTH} levels")
        if "$ref" in node:
            self.reference(node, where, depth)
            return
        if "anyOf" in node:
            self.union(node, where, depth)
            return
        types = self.types(node, where)
        allowed = _ANY_NODE.union(*(_BY_TYPE[kind] for kind in types))
        for keyword in node:
            if keyword not in allowed:
                self.fail(where, f"keyword {keyword!r} is not supported for type {sorted(types)}")
        if "format" in node and node["format"] not in _FORMATS:
            self.fail(where, f"format {node['format']!r} is not supported")
        if len(node.get("enum", ())) > _MAX_ENUM_VALUES:
            self.fail(where, f"more than {_MAX_ENUM_VALUES} enum values")
        if "object" in types:
            self.closed_object(node, where, depth)
        if "array" in types:
            if not isinstance(node.get("items"), dict):
                self.fail(where, "an array needs an `items` schema")
            else:
                self.node(node["items"], f"{where}[]", depth + 1)

    def types(self, node: dict[str, Any], where: str) -> set[str]:
        kind = node.get("type")
        kinds = set(kind) if isinstance(kind, list) else {kind}
        if kind is None or not kinds <= _TYPES:
            self.fail(where, f"every schema needs a supported `type`, got {kind!r}")
            return set()
        return {str(k) for k in kinds}

    def union(self, node: dict[str, Any], where: str, depth: int) -> None:
        for keyword in node:
            if keyword not in {"anyOf", "description"}:
                self.fail(where, f"keyword {keyword!r} beside anyOf")
        branches = node["anyOf"]
        if not isinstance(branches, list) or not branches:
            self.fail(where, "anyOf must list schemas")
            return
        for index, branch in enumerate(branches):
            self.node(branch, f"{where}|{index}", depth)

    def reference(self, node: dict[str, Any], where: str, depth: int) -> None:
        ref = node["$ref"]
        if set(node) - {"$ref", "description"}:
            self.fail(where, f"keywords beside $ref: {sorted(set(node) - {'$ref'})}")
        name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ""
        if not ref.startswith("#/$defs/") or name not in self.root.get("$defs", {}):
            self.fail(where, f"$ref {ref!r} does not resolve in the root's $defs")

    def closed_object(self, node: dict[str, Any], where: str, depth: int) -> None:
        properties = node.get("properties")
        if not isinstance(properties, dict):
            self.fail(where, "an object must list its `properties`")
            return
        if node.get("additionalProperties") is not False:
            self.fail(where, "every object needs additionalProperties: false")
        if sorted(node.get("required", [])) != sorted(properties):
            self.fail(where, "every property must be listed in `required`")
        self.properties += len(properties)
        for name, prop in properties.items():
            self.node(prop, f"{where}.{name}", depth + 1)


def strict_problems(parameters: dict[str, Any]) -> list[str]:
    """Every strict-mode rule `parameters` breaks (empty when OpenAI accepts it)."""
    checker = _Checker(parameters)
    checker.check_root()
    return checker.problems


def _accepts_null(schema: dict[str, Any], root: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return _accepts_null(root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root)
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_accepts_null(branch, root) for branch in schema.get("anyOf", ()))


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str | None = None


def _third_party_tools(registry: ToolRegistry) -> None:
    @registry.tool
    def describe(
        payload: Any,
        extras: list[Any],
        address: Address,
        note: Annotated[str, Field(description="A note.")] = "",
        fallback: Any = None,
    ) -> str:
        """Describe a value (a third-party tool with `Any` at several depths and a nested model).

        Args:
            payload: Anything.
            extras: More of anything.
            address: Where.
            fallback: Used when the payload is null.
        """
        return repr((payload, extras, address, note, fallback))


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    registry = ToolRegistry()

    # Never called: the providers only let `run_code` and the knowledge tools be registered.
    def nothing() -> Any:
        raise AssertionError("not called")

    register_builtins(registry, executor=nothing, knowledge=nothing)
    _third_party_tools(registry)
    return registry


def test_every_exported_tool_meets_the_strict_rules(registry: ToolRegistry) -> None:
    names = {info.name for info in registry.list()}
    assert {"run_code", "to_json", "describe"} <= names
    assert {"list_collections", "search_knowledge", "remember"} <= names
    problems: dict[str, list[str]] = {}
    for tool in registry.to_openai():
        function = tool["function"]
        info = registry.get(function["name"])
        found = strict_problems(function["parameters"])
        if not _NAME.fullmatch(function["name"]) or not function["description"]:
            found.append("a name of 1-64 letters, digits, _ or - and a description are required")
        if function["strict"] is not True:
            found.append("exported without strict: true")
        optional = set(info.input_schema.get("properties", {})) - set(
            info.input_schema.get("required", ())
        )
        parameters = function["parameters"]
        for name in optional:
            if not _accepts_null(parameters["properties"][name], parameters):
                found.append(f"optional parameter {name!r} is not nullable")
        if found:
            problems[function["name"]] = found
    assert problems == {}


def test_the_checker_catches_each_rule() -> None:
    def problems(schema: dict[str, Any]) -> list[str]:
        return strict_problems(
            {"type": "object", "properties": {"x": schema}, "required": ["x"], **_CLOSED}
        )

    assert problems({"type": "string"}) == []
    assert problems({"description": "Any JSON value."})  # no type: what `Any` used to export
    assert problems({"type": "object", "properties": {}, "required": []})  # not closed
    assert problems({"type": "string", "minLength": 1})  # unsupported keyword
    assert problems({"type": "number", "pattern": "x"})  # keyword on the wrong type
    assert problems({"anyOf": [{"type": "string"}, {}]})  # an untyped branch
    assert problems({"type": "array"})  # no items
    assert problems({"$ref": "#/$defs/Missing"})
    assert strict_problems({"anyOf": [{"type": "object"}]})  # the root is a union
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(11):
        deep = {"type": "object", "properties": {"d": deep}, "required": ["d"], **_CLOSED}
    assert strict_problems(deep)


_CLOSED = {"additionalProperties": False}


def test_any_becomes_a_union_of_json_types_that_the_tool_accepts(
    registry: ToolRegistry,
) -> None:
    function = next(t for t in registry.to_openai() if t["function"]["name"] == "to_json")
    value = function["function"]["parameters"]["properties"]["value"]
    kinds = {branch.get("type") for branch in value["anyOf"]}
    assert {"string", "number", "boolean", "null", "array"} <= kinds
    assert value["description"] == "Any JSON value."
    # What a strict model may send, the tool accepts.
    for sent in ("text", 1.5, 2, True, None, [1, "a", [None, False]]):
        result = registry.call("to_json", {"value": sent, "indent": None, "sort_keys": None})
        assert result.ok, result.error


def test_both_openai_apis_are_exported(registry: ToolRegistry) -> None:
    chat = registry.to_openai()
    responses = registry.to_openai(api="responses")
    for nested, flat in zip(chat, responses, strict=True):
        assert set(nested) == {"type", "function"}
        assert set(flat) == {"type", "name", "description", "parameters", "strict"}
        assert flat == {"type": "function", **nested["function"]}
