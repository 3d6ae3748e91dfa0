"""The seed's built-in tools, registered through the public `ToolRegistry.register` like any others."""

from __future__ import annotations

from collections.abc import Callable

from companion.execution import Executor
from companion.knowledge import KnowledgeBase
from companion.tools._builtins import _json, _lists, _math, _text, _time
from companion.tools._builtins._code import make_run_code
from companion.tools._builtins._knowledge import make_search_knowledge
from companion.tools._registry import ToolRegistry

__all__ = ["BUILTIN_NAMES", "register_builtins"]

_MODULES = (_math, _text, _time, _lists, _json)
BUILTIN_NAMES = tuple(name for module in _MODULES for name in module.__all__)


def register_builtins(
    registry: ToolRegistry,
    executor: Executor | Callable[[], Executor] | None = None,
    knowledge: Callable[[], KnowledgeBase] | None = None,
) -> None:
    """Register the built-in tools; `run_code` and `search_knowledge` when their subsystems run."""
    for module in _MODULES:
        for name in module.__all__:
            registry.register(getattr(module, name))
    if executor is not None:
        registry.register(make_run_code(executor), name="run_code", category="code", timeout_s=60.0)
    if knowledge is not None:
        registry.register(
            make_search_knowledge(knowledge),
            name="search_knowledge",
            category="knowledge",
            read_only=True,
            timeout_s=30.0,
        )
