"""Descriptions from a docstring: the summary and one line per parameter (Google, NumPy, Sphinx)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import docstring_parser

__all__ = ["DocInfo", "parse_docstring"]


@dataclass(frozen=True, slots=True)
class DocInfo:
    """What a docstring says about a tool."""

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)
    returns: str = ""


def parse_docstring(doc: str | None) -> DocInfo:
    """Parse `doc` in whichever of the Google, NumPy or Sphinx styles it is written."""
    if not doc:
        return DocInfo()
    text = inspect.cleandoc(doc)
    try:
        parsed = docstring_parser.parse(text)
    except docstring_parser.ParseError:
        # A docstring we cannot read still describes the tool: keep it whole.
        return DocInfo(description=text)
    parts = [part for part in (parsed.short_description, parsed.long_description) if part]
    params = {
        param.arg_name: _one_line(param.description) for param in parsed.params if param.description
    }
    returns = _one_line(parsed.returns.description) if parsed.returns else ""
    return DocInfo(description="\n\n".join(parts), params=params, returns=returns)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())
