"""List built-ins."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from companion.tools._errors import ToolError
from companion.tools._tool import tool

__all__ = ["list_average", "list_max", "list_min", "list_sort", "list_sum", "list_unique"]

Numbers = Annotated[list[float], Field(description="The numbers.")]
NonEmpty = Annotated[list[float], Field(description="The numbers (at least one).")]
Scalar = str | float


@tool(category="lists", pure=True, inline=True)
def list_sum(numbers: Numbers) -> float:
    """The sum of a list of numbers (0 for an empty list)."""
    return sum(numbers)


@tool(category="lists", pure=True, inline=True)
def list_average(numbers: NonEmpty) -> float:
    """The arithmetic mean of a list of numbers."""
    if not numbers:
        raise ToolError("cannot average an empty list", code="empty_list")
    return sum(numbers) / len(numbers)


@tool(category="lists", pure=True, inline=True)
def list_min(numbers: NonEmpty) -> float:
    """The smallest number of a list."""
    if not numbers:
        raise ToolError("an empty list has no minimum", code="empty_list")
    return min(numbers)


@tool(category="lists", pure=True, inline=True)
def list_max(numbers: NonEmpty) -> float:
    """The largest number of a list."""
    if not numbers:
        raise ToolError("an empty list has no maximum", code="empty_list")
    return max(numbers)


@tool(category="lists", pure=True, inline=True)
def list_unique(items: list[Scalar]) -> list[Scalar]:
    """The distinct items of a list, in order of first appearance.

    Args:
        items: Strings and numbers.
    """
    seen: dict[tuple[type, Scalar], Scalar] = {}
    for item in items:
        seen.setdefault((type(item), item), item)
    return list(seen.values())


@tool(category="lists", pure=True, inline=True)
def list_sort(items: list[Scalar], descending: bool = False) -> list[Scalar]:
    """Sort a list: numbers before strings, each in natural order.

    Args:
        items: Strings and numbers.
        descending: Largest first.
    """
    numbers = sorted((item for item in items if not isinstance(item, str)), reverse=descending)
    texts = sorted((item for item in items if isinstance(item, str)), reverse=descending)
    return [*numbers, *texts]
