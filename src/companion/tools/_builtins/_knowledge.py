"""`search_knowledge`: a search of one of the caller's collections, through `companion.knowledge`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from companion.knowledge import KnowledgeBase
from companion.tools._context import current_tenant
from companion.tools._tool import tool

__all__ = ["KnowledgeSource", "make_search_knowledge"]

# A function giving the running knowledge base (the service's), or a coroutine function starting
# one on first use (the CLI's).
KnowledgeSource = Callable[[], KnowledgeBase | Awaitable[KnowledgeBase]]


def make_search_knowledge(knowledge: KnowledgeSource) -> Callable[..., Awaitable[Any]]:
    """Build `search_knowledge` over `knowledge`; it acts through the `knowledge:read` scope."""

    @tool(
        name="search_knowledge",
        category="knowledge",
        read_only=True,
        timeout_s=30.0,
        scope="knowledge:read",
    )
    async def search_knowledge(
        collection: str,
        query: str,
        mode: Literal["bm25", "vector", "hybrid"] = "bm25",
        k: int = 5,
    ) -> dict[str, Any]:
        """Search one of your knowledge collections and return the best passages with scores.

        Args:
            collection: The collection to search (one of the caller's own).
            query: What to look for, in plain words.
            mode: "bm25" (full text), "vector" (meaning) or "hybrid" (both, fused).
            k: How many passages to return (1-100).
        """
        running = knowledge()
        if inspect.isawaitable(running):
            running = await running
        assert isinstance(running, KnowledgeBase)
        result = await running.search(current_tenant(), collection, query, mode=mode, k=k)
        return result.to_dict()

    return search_knowledge
