"""The knowledge tools: an agent lists, searches and writes its own collections (`companion.knowledge`).

`list_collections` and `search_knowledge` act through the `knowledge:read` scope, `remember` through
`knowledge:write`, the scopes of the matching `/v1/collections` routes; every call acts for the
caller's tenant (`current_tenant()`), so a collection of another tenant is one that does not exist.
The knowledge base checks every argument it is given (names, filters, documents) and its errors
(`collection_not_found`, `invalid_filter`, `invalid_document`, ...) are the tools' errors.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from typing_extensions import TypedDict

from companion.errors import InvalidInput
from companion.knowledge import CollectionNotFound, InvalidDocument, InvalidFilter, KnowledgeBase
from companion.telemetry import NO_TELEMETRY, Telemetry, record_search, search_span
from companion.tools._context import current_tenant
from companion.tools._tool import tool

__all__ = ["KnowledgeSource", "make_knowledge_tools"]

# A function giving the running knowledge base (the service's), or a coroutine function starting
# one on first use (the CLI's).
KnowledgeSource = Callable[[], KnowledgeBase | Awaitable[KnowledgeBase]]

# OpenAI's strict mode cannot describe an object with free-form keys (every object is closed), so a
# strict model could only send `{}` for a filter or metadata: these parameters also take the object
# as JSON text, which every client can send.
JsonObject = dict[str, Any] | str


class CollectionSummary(TypedDict):
    """One of the caller's collections."""

    name: str
    description: str
    document_count: int
    chunk_count: int
    has_embeddings: bool


class CollectionList(TypedDict):
    """The caller's collections, by name."""

    collections: list[CollectionSummary]


class Remembered(TypedDict):
    """Where `remember` stored the document."""

    document_id: str
    collection: str
    collection_created: bool


def make_knowledge_tools(
    knowledge: KnowledgeSource, *, telemetry: Telemetry = NO_TELEMETRY
) -> list[Callable[..., Awaitable[Any]]]:
    """`list_collections`, `search_knowledge` and `remember` over `knowledge`; with tracing on,
    each search is a `knowledge.search` span, as on the HTTP route."""

    @tool(
        name="list_collections",
        category="knowledge",
        read_only=True,
        timeout_s=30.0,
        scope="knowledge:read",
    )
    async def list_collections() -> CollectionList:
        """List your knowledge collections: each one's name, description, how many documents and
        chunks it holds, and whether it has embeddings (needed for "vector" and "hybrid" search).
        """
        running = await _running(knowledge)
        collections = await running.list_collections(current_tenant())
        return {
            "collections": [
                {
                    "name": collection.name,
                    "description": collection.description,
                    "document_count": collection.document_count,
                    "chunk_count": collection.chunk_count,
                    "has_embeddings": collection.embedding is not None,
                }
                for collection in collections
            ]
        }

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
        filter: JsonObject | None = None,
    ) -> dict[str, Any]:
        """Search one of your knowledge collections and return the best passages with scores,
        titles and metadata.

        Args:
            collection: The collection to search (one of your own; see `list_collections`).
            query: What to look for, in plain words.
            mode: "bm25" (full text, the default), "vector" (meaning) or "hybrid" (both, fused);
                "vector" and "hybrid" need a collection with embeddings.
            k: How many passages to return (1-100).
            filter: Only passages whose document metadata matches, e.g. {"lang": "en", "year":
                {"gte": 2020}}: field -> value (equal) or field -> {operator: value}; every
                condition must hold. The same filter as the HTTP search route (see
                docs/knowledge.md for the operators). May be given as JSON text.
        """
        conditions = _json_object(filter, "filter", InvalidFilter)
        running = await _running(knowledge)
        filtered = conditions is not None
        with search_span(telemetry, mode=mode, k=k, filtered=filtered) as span:
            result = await running.search(
                current_tenant(), collection, query, mode=mode, k=k, filter=conditions
            )
            record_search(span, result, collection=collection)
        return result.to_dict()

    @tool(name="remember", category="knowledge", timeout_s=60.0, scope="knowledge:write")
    async def remember(
        collection: str,
        text: str,
        title: str | None = None,
        id: str | None = None,
        metadata: JsonObject | None = None,
    ) -> Remembered:
        """Save a note or a document to one of your knowledge collections, so that
        `search_knowledge` finds it later. The collection is created if it does not exist yet.
        Returns the document's id; saving again with the same `id` replaces that document.

        Args:
            collection: The collection to save to, e.g. "notes" (1-64 letters, digits, "_", "."
                or "-"); created when new.
            text: The note or document text (not empty).
            title: A title, searched with the text and returned with every passage.
            id: The document's id: give one to update the document later; a new id is made
                when omitted.
            metadata: Fields to filter searches by, e.g. {"topic": "billing", "year": 2024}; a
                JSON object, or JSON text of one.
        """
        fields = _json_object(metadata, "metadata", InvalidDocument)
        document: dict[str, Any] = {"text": text, "id": id, "title": title}
        if fields is not None:
            document["metadata"] = fields
        running = await _running(knowledge)
        tenant = current_tenant()
        created = False
        try:
            # The knowledge base checks the document before it looks for the collection, so a
            # bad one never creates a collection.
            ids = await running.upsert(tenant, collection, [document])
        except CollectionNotFound:
            _, created = await running.ensure_collection(tenant, collection)
            ids = await running.upsert(tenant, collection, [document])
        return {"document_id": ids[0], "collection": collection, "collection_created": created}

    return [list_collections, search_knowledge, remember]


def _json_object(value: JsonObject | None, name: str, error: type[InvalidInput]) -> Any:
    """An object argument as given, or parsed from its JSON text (blank text is none at all); the
    knowledge base checks what it holds."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise error(f"{name} is neither a JSON object nor JSON text of one ({exc})") from None


async def _running(knowledge: KnowledgeSource) -> KnowledgeBase:
    """The knowledge base a source gives (started on first use by the CLI's)."""
    running = knowledge()
    if inspect.isawaitable(running):
        running = await running
    assert isinstance(running, KnowledgeBase)
    return running
