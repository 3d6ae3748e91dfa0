"""Every built-in's schema and domain errors; the exports meet OpenAI's strict rules."""

from __future__ import annotations

from typing import Any

import pytest

from companion.tools import BUILTIN_NAMES, ToolRegistry, register_builtins

SEED_TOOLS = set(
    "add subtract multiply divide power sqrt uppercase lowercase reverse_text count_words "
    "count_characters extract_numbers current_datetime current_timestamp format_date list_sum "
    "list_average list_min list_max list_unique list_sort parse_json to_json".split()
)


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    registry = ToolRegistry()
    register_builtins(registry)
    return registry


def test_every_seed_tool_is_registered_with_a_described_schema(registry: ToolRegistry) -> None:
    assert set(BUILTIN_NAMES) == SEED_TOOLS
    for info in registry.list():
        assert info.description, info.name
        schema = info.input_schema
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{info.name}.{name} has no description"


@pytest.mark.parametrize(
    ("name", "arguments", "value"),
    [
        ("add", {"a": 5, "b": 3}, 8.0),
        ("power", {"base": 2, "exponent": 10}, 1024.0),
        ("sqrt", {"x": 16}, 4.0),
        ("reverse_text", {"text": "abc"}, "cba"),
        ("count_words", {"text": " a b  c "}, 3),
        ("count_characters", {"text": "a b", "include_spaces": False}, 2),
        ("extract_numbers", {"text": "x 1.5, -2 and 3e2"}, [1.5, -2.0, 300.0]),
        ("format_date", {"date": "2024-03-01", "format": "%d/%m/%Y"}, "01/03/2024"),
        ("list_average", {"numbers": [1, 2, 3]}, 2.0),
        ("list_unique", {"items": [1, "a", 1, "a", 2]}, [1, "a", 2]),
        ("list_sort", {"items": [3, "b", 1, "a"], "descending": True}, [3, 1, "b", "a"]),
        ("parse_json", {"text": '{"k": [1]}'}, {"k": [1]}),
        ("to_json", {"value": {"b": 1, "a": 2}, "sort_keys": True}, '{"a":2,"b":1}'),
    ],
)
def test_builtins_compute(
    registry: ToolRegistry, name: str, arguments: dict[str, Any], value: object
) -> None:
    result = registry.call(name, arguments)
    assert result.ok, result.error
    assert result.value == value


@pytest.mark.parametrize(
    ("name", "arguments", "code"),
    [
        ("divide", {"a": 1, "b": 0}, "division_by_zero"),
        ("sqrt", {"x": -4}, "math_domain"),
        ("format_date", {"date": "yesterday"}, "invalid_date"),
        ("parse_json", {"text": "{nope"}, "invalid_json"),
        ("list_average", {"numbers": []}, "empty_list"),
        ("current_datetime", {"timezone": "Mars/Olympus"}, "invalid_timezone"),
    ],
)
def test_domain_errors_are_clear(
    registry: ToolRegistry, name: str, arguments: dict[str, Any], code: str
) -> None:
    result = registry.call(name, arguments)
    assert not result.ok
    assert result.error is not None
    assert result.error.code == code
    assert result.error.message


def _check_strict(node: Any, where: str) -> None:
    """OpenAI strict mode: closed objects, every property required, no unsupported keywords."""
    if isinstance(node, list):
        for item in node:
            _check_strict(item, where)
        return
    if not isinstance(node, dict):
        return
    assert "default" not in node, where
    if node.get("type") == "object" or "properties" in node:
        assert node.get("additionalProperties") is False, where
        assert sorted(node.get("required", [])) == sorted(node.get("properties", {})), where
    for key, value in node.items():
        if key == "properties":
            for name, prop in value.items():
                _check_strict(prop, f"{where}.{name}")
        else:
            _check_strict(value, where)


def test_openai_exports_are_strict_valid(registry: ToolRegistry) -> None:
    chat = registry.to_openai()
    responses = registry.to_openai(api="responses")
    assert len(chat) == len(responses) == len(SEED_TOOLS)
    for entry, flat in zip(chat, responses, strict=True):
        function = entry["function"]
        assert entry["type"] == "function"
        assert function["strict"] is True
        assert flat == {"type": "function", **function}
        _check_strict(function["parameters"], function["name"])
    counter = next(t for t in chat if t["function"]["name"] == "count_characters")
    include_spaces = counter["function"]["parameters"]["properties"]["include_spaces"]
    assert {"type": "null"} in include_spaces["anyOf"]  # optional, so nullable


def test_anthropic_and_mcp_exports(registry: ToolRegistry) -> None:
    anthropic = registry.to_anthropic(category="math")
    assert {tool["name"] for tool in anthropic} == {
        "add",
        "subtract",
        "multiply",
        "divide",
        "power",
        "sqrt",
    }
    assert set(anthropic[0]) == {"name", "description", "input_schema"}
    mcp = {tool["name"]: tool for tool in registry.to_mcp()}
    assert mcp["add"]["outputSchema"]["properties"]["result"] == {"type": "number"}
    assert mcp["add"]["annotations"]["readOnlyHint"] is True
    assert mcp["current_timestamp"]["annotations"]["idempotentHint"] is True
