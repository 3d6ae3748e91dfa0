"""Date and time built-ins (impure: the clock moves)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from companion.tools._errors import ToolError
from companion.tools._tool import tool

__all__ = ["current_datetime", "current_timestamp", "format_date"]


@tool(category="time", read_only=True, inline=True)
def current_datetime(timezone: str = "UTC") -> str:
    """The current date and time as ISO 8601.

    Args:
        timezone: An IANA time zone name such as "Europe/Paris".
    """
    return dt.datetime.now(_zone(timezone)).isoformat()


@tool(category="time", read_only=True, inline=True)
def current_timestamp() -> float:
    """The current Unix timestamp in seconds."""
    return time.time()


@tool(category="time", pure=True, inline=True)
def format_date(date: str, format: str = "%Y-%m-%d") -> str:  # the seed's name
    """Reformat an ISO 8601 date or date-time with a `strftime` format.

    Args:
        date: The date, e.g. "2024-03-01" or "2024-03-01T12:30:00+00:00".
        format: A `strftime` format such as "%d %B %Y".
    """
    try:
        parsed = dt.datetime.fromisoformat(date)
    except ValueError:
        raise ToolError(
            f"invalid date {date!r}: expected ISO 8601 such as 2024-03-01", code="invalid_date"
        ) from None
    return parsed.strftime(format)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {name!r}", code="invalid_timezone") from None
