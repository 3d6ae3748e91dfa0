"""Arithmetic built-ins."""

from __future__ import annotations

import math

from companion.tools._errors import ToolError
from companion.tools._tool import tool

__all__ = ["add", "divide", "multiply", "power", "sqrt", "subtract"]


@tool(category="math", pure=True, inline=True)
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


@tool(category="math", pure=True, inline=True)
def subtract(a: float, b: float) -> float:
    """Subtract `b` from `a`.

    Args:
        a: The number to subtract from.
        b: The number to subtract.
    """
    return a - b


@tool(category="math", pure=True, inline=True)
def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return a * b


@tool(category="math", pure=True, inline=True)
def divide(a: float, b: float) -> float:
    """Divide `a` by `b`.

    Args:
        a: The dividend.
        b: The divisor (not zero).
    """
    if b == 0:
        raise ToolError("cannot divide by zero", code="division_by_zero")
    return a / b


@tool(category="math", pure=True, inline=True)
def power(base: float, exponent: float) -> float:
    """Raise `base` to the power `exponent`.

    Args:
        base: The base.
        exponent: The exponent.
    """
    try:
        result = math.pow(base, exponent)
    except (OverflowError, ValueError) as exc:
        raise ToolError(
            f"{base} ** {exponent} has no real result ({exc})", code="math_domain"
        ) from None
    return result


@tool(category="math", pure=True, inline=True)
def sqrt(x: float) -> float:
    """The square root of a non-negative number.

    Args:
        x: The number (at least 0).
    """
    if x < 0:
        raise ToolError(
            f"cannot take the square root of a negative number ({x})", code="math_domain"
        )
    return math.sqrt(x)
