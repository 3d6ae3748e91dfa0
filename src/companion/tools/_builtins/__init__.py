"""The seed's built-in tools, registered through the public `ToolRegistry.register` like any others."""

from __future__ import annotations

from collections.abc import Sequence

from companion.tools._builtins import _json, _lists, _math, _text, _time
from companion.tools._builtins._code import ExecutorSource, make_run_code, make_session_tools
from companion.tools._builtins._knowledge import KnowledgeSource, make_knowledge_tools
from companion.tools._registry import ToolRegistry

__all__ = ["BUILTIN_NAMES", "register_builtins"]

_MODULES = (_math, _text, _time, _lists, _json)
BUILTIN_NAMES = tuple(name for module in _MODULES for name in module.__all__)


def register_builtins(
    registry: ToolRegistry,
    executor: ExecutorSource | None = None,
    knowledge: KnowledgeSource | None = None,
    python_packages: Sequence[str] = (),
) -> None:
    """Register the built-in tools; `run_code` (with `open_session` and `close_session`) and
    the knowledge tools (`list_collections`, `search_knowledge`, `remember`) when given their
    subsystems.

    The service gives its running executor and knowledge base; the CLI (`companion tools`,
    `companion mcp`) gives coroutine functions that start the local ones on first use.
    `python_packages` ("numpy 2.4.6", ...) are what `run_code`'s description offers.
    """
    for module in _MODULES:
        for name in module.__all__:
            registry.register(getattr(module, name))
    if executor is not None:
        registry.register(make_run_code(executor, python_packages))
        for session_tool in make_session_tools(executor):
            registry.register(session_tool)
    if knowledge is not None:
        # Searches are traced through the registry's telemetry (off unless the service set it).
        for knowledge_tool in make_knowledge_tools(knowledge, telemetry=registry.telemetry):
            registry.register(knowledge_tool)
