"""JSON built-ins."""

from __future__ import annotations

from typing import Any

import orjson

from companion.tools._errors import ToolError
from companion.tools._tool import tool

__all__ = ["parse_json", "to_json"]


@tool(category="json", pure=True, inline=True)
def parse_json(text: str) -> Any:
    """Parse a JSON document into a value.

    Args:
        text: The JSON text.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ToolError(f"invalid JSON: {exc}", code="invalid_json") from None


@tool(category="json", pure=True, inline=True)
def to_json(value: Any, indent: bool = False, sort_keys: bool = False) -> str:
    """Serialise a value as JSON text.

    Args:
        value: Any JSON value.
        indent: Indent with two spaces.
        sort_keys: Sort object keys.
    """
    option = (orjson.OPT_INDENT_2 if indent else 0) | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    return orjson.dumps(value, option=option).decode()
