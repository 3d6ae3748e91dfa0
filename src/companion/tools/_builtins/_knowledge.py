"""`search_knowledge`: a search of one of the caller's collections, through `companion.knowledge`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from companion.knowledge import KnowledgeBase
from companion.tools._context import current_tenant

__all__ = ["make_search_knowledge"]


def make_search_knowledge(
    knowledge: Callable[[], KnowledgeBase],
) -> Callable[..., Awaitable[Any]]:
    """Build `search_knowledge` over a function returning the running knowledge base."""

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
        result = await knowledge().search(current_tenant(), collection, query, mode=mode, k=k)
        return result.to_dict()

    return search_knowledge
