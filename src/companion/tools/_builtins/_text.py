"""Text built-ins."""

from __future__ import annotations

import re

from companion.tools._tool import tool

__all__ = [
    "count_characters",
    "count_words",
    "extract_numbers",
    "lowercase",
    "reverse_text",
    "uppercase",
]

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@tool(category="text", pure=True, inline=True)
def uppercase(text: str) -> str:
    """Convert text to upper case.

    Args:
        text: The text to convert.
    """
    return text.upper()


@tool(category="text", pure=True, inline=True)
def lowercase(text: str) -> str:
    """Convert text to lower case.

    Args:
        text: The text to convert.
    """
    return text.lower()


@tool(category="text", pure=True, inline=True)
def reverse_text(text: str) -> str:
    """Reverse text character by character.

    Args:
        text: The text to reverse.
    """
    return text[::-1]


@tool(category="text", pure=True, inline=True)
def count_words(text: str) -> int:
    """Count the whitespace-separated words of a text.

    Args:
        text: The text to count words in.
    """
    return len(text.split())


@tool(category="text", pure=True, inline=True)
def count_characters(text: str, include_spaces: bool = True) -> int:
    """Count the characters of a text.

    Args:
        text: The text to measure.
        include_spaces: Whether whitespace characters count.
    """
    return len(text) if include_spaces else sum(1 for char in text if not char.isspace())


@tool(category="text", pure=True, inline=True)
def extract_numbers(text: str) -> list[float]:
    """Find every number in a text, in order (integers, decimals, exponents, signs).

    Args:
        text: The text to search.
    """
    return [float(match) for match in _NUMBER.findall(text)]
