"""The caller's knowledge collections and documents as MCP resources (read-only).

    companion://collections                                 the caller's collections (JSON)
    companion://collections/{collection}                    one collection and a page of its documents (JSON)
    companion://collections/{collection}?after={id}         the next page of that listing
    companion://collections/{collection}/documents/{id}     one document's text; its metadata in `_meta`

Every path segment is percent-encoded (a document id may hold `/` or spaces). Everything is read
through `KnowledgeBase`'s public API for one tenant, so another tenant's collection is one that
does not exist. `resources/list` walks the index, then each collection followed by its documents,
a page at a time; its cursor is opaque to clients (the collection and the last document id sent).
"""

from __future__ import annotations

import base64
import binascii
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import mcp_types as types
import orjson

from companion.knowledge import Collection, CollectionNotFound, Document, KnowledgeBase
from companion.tools._errors import InvalidCursor, ResourceNotFound

__all__ = [
    "COLLECTION_TEMPLATE",
    "DOCUMENT_TEMPLATE",
    "INDEX_URI",
    "KnowledgeResources",
    "KnowledgeSource",
    "collection_uri",
    "document_uri",
    "running_knowledge",
]

# A function giving the running knowledge base (the service's), or a coroutine function starting
# one on first use (the CLI's): the same source the knowledge tools take.
KnowledgeSource = Callable[[], KnowledgeBase | Awaitable[KnowledgeBase]]

SCHEME = "companion"
INDEX_URI = f"{SCHEME}://collections"
COLLECTION_TEMPLATE = f"{INDEX_URI}/{{collection}}"
DOCUMENT_TEMPLATE = f"{INDEX_URI}/{{collection}}/documents/{{document_id}}"
_JSON = "application/json"
_TEXT = "text/plain"
# Documents per read of a collection resource: a listing carries ids and titles, not texts.
COLLECTION_PAGE_DOCUMENTS = 200


def collection_uri(collection: str, after: str | None = None) -> str:
    """The URI of a collection's resource (from `after`, for the next page of its documents)."""
    uri = f"{INDEX_URI}/{quote(collection, safe='')}"
    return uri if after is None else f"{uri}?after={quote(after, safe='')}"


def document_uri(collection: str, document_id: str) -> str:
    """The URI of one document's resource."""
    return f"{INDEX_URI}/{quote(collection, safe='')}/documents/{quote(document_id, safe='')}"


async def running_knowledge(knowledge: KnowledgeSource) -> KnowledgeBase:
    """The knowledge base a source gives (the CLI's starts it on first use)."""
    running = knowledge()
    if inspect.isawaitable(running):
        running = await running
    assert isinstance(running, KnowledgeBase)
    return running


@dataclass(frozen=True, slots=True)
class _Target:
    """What a URI names: the index (no collection), a collection, or one of its documents."""

    collection: str | None = None
    document_id: str | None = None
    after: str | None = None


def parse_uri(uri: str) -> _Target:
    """What `uri` names, or `ResourceNotFound`."""
    parts = urlsplit(uri)
    segments = parts.path.split("/")[1:] if parts.path else []
    if parts.scheme != SCHEME or parts.netloc != "collections" or parts.fragment:
        raise ResourceNotFound(f"unknown resource {uri!r}: this server's URIs start {INDEX_URI}")
    query = parse_qs(parts.query, keep_blank_values=True) if parts.query else {}
    if segments == [] and not query:
        return _Target()
    if len(segments) == 1 and segments[0] and set(query) <= {"after"}:
        after = query.get("after", [None])[-1]
        return _Target(collection=unquote(segments[0]), after=after or None)
    if len(segments) == 3 and segments[1] == "documents" and all(segments) and not query:
        return _Target(collection=unquote(segments[0]), document_id=unquote(segments[2]))
    raise ResourceNotFound(
        f"unknown resource {uri!r}: this server serves {INDEX_URI}, {COLLECTION_TEMPLATE} and "
        f"{DOCUMENT_TEMPLATE}"
    )


class KnowledgeResources:
    """Lists, describes and reads one tenant's collections and documents as MCP resources."""

    def __init__(self, knowledge: KnowledgeSource, *, page_size: int = 100) -> None:
        if page_size < 2:
            raise ValueError("page_size must be at least 2 (the index and one more)")
        self._knowledge = knowledge
        self.page_size = page_size

    @staticmethod
    def templates() -> list[types.ResourceTemplate]:
        """The two templates: a collection, and a document of one."""
        return [
            types.ResourceTemplate(
                uri_template=COLLECTION_TEMPLATE,
                name="collection",
                title="Knowledge collection",
                description=(
                    "One of your knowledge collections: its description, counts and documents "
                    f"(ids, titles, URIs; {COLLECTION_PAGE_DOCUMENTS} a read, `next_page` names "
                    "the next)."
                ),
                mime_type=_JSON,
            ),
            types.ResourceTemplate(
                uri_template=DOCUMENT_TEMPLATE,
                name="document",
                title="Knowledge document",
                description=(
                    "One document of a collection: its whole text; its title, source and "
                    "metadata in the contents' `_meta`."
                ),
                mime_type=_TEXT,
            ),
        ]

    async def list_page(self, tenant: str, cursor: str | None) -> types.ListResourcesResult:
        """One page of the index, the collections and their documents, in that order."""
        knowledge = await running_knowledge(self._knowledge)
        start, after = _decode_cursor(cursor) if cursor is not None else (None, None)
        listed: list[types.Resource] = []
        if cursor is None:
            listed.append(_index_resource())
        collections = sorted(await knowledge.list_collections(tenant), key=lambda c: c.name)
        for collection in collections:
            if start is not None and collection.name < start:
                continue
            # "" marks a collection whose own resource was sent, its documents not yet.
            resume = after if collection.name == start else None
            if resume is None:
                if len(listed) >= self.page_size:
                    return _page(listed, collection.name, None)
                listed.append(_collection_resource(collection))
                resume = ""
            while True:
                room = self.page_size - len(listed)
                if room <= 0:
                    return _page(listed, collection.name, resume)
                try:
                    page = await knowledge.list_documents(
                        tenant, collection.name, limit=min(room, 1000), after=resume or None
                    )
                except CollectionNotFound:  # deleted while we listed: nothing left to send
                    break
                listed.extend(_document_resource(collection.name, d) for d in page.documents)
                if page.next_after is None:
                    break
                resume = page.next_after
        return types.ListResourcesResult(resources=listed)

    async def read(self, tenant: str, uri: str) -> types.ReadResourceResult:
        """The contents `uri` names (`ResourceNotFound`, `CollectionNotFound`, `DocumentNotFound`)."""
        target = parse_uri(uri)
        knowledge = await running_knowledge(self._knowledge)
        if target.collection is None:
            collections = await knowledge.list_collections(tenant)
            body: Any = {"collections": [_summary(c) for c in collections]}
            return _json_contents(uri, body)
        if target.document_id is None:
            collection = await knowledge.get_collection(tenant, target.collection)
            page = await knowledge.list_documents(
                tenant, collection.name, limit=COLLECTION_PAGE_DOCUMENTS, after=target.after
            )
            body = {
                **_summary(collection),
                "created_at": collection.created_at,
                "documents": [
                    {
                        "id": document.id,
                        "title": document.title,
                        "source": document.source,
                        "size_bytes": len(document.text.encode()),
                        "uri": document_uri(collection.name, document.id),
                    }
                    for document in page.documents
                ],
                "next_page": (
                    collection_uri(collection.name, page.next_after) if page.next_after else None
                ),
            }
            return _json_contents(uri, body)
        document = await knowledge.get_document(tenant, target.collection, target.document_id)
        meta = {
            "collection": target.collection,
            "id": document.id,
            "title": document.title,
            "source": document.source,
            "metadata": document.metadata,
            "chunk_count": document.chunk_count,
            "created_at": document.created_at,
            "updated_at": document.updated_at,
        }
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(uri=uri, mime_type=_TEXT, text=document.text, _meta=meta)
            ]
        )

    async def collection_names(self, tenant: str, prefix: str) -> list[str]:
        """The tenant's collection names starting with `prefix` (argument completion)."""
        knowledge = await running_knowledge(self._knowledge)
        names = sorted(c.name for c in await knowledge.list_collections(tenant))
        return [name for name in names if name.startswith(prefix)]


def _summary(collection: Collection) -> dict[str, Any]:
    return {
        "name": collection.name,
        "description": collection.description,
        "document_count": collection.document_count,
        "chunk_count": collection.chunk_count,
        "has_embeddings": collection.embedding is not None,
        "uri": collection_uri(collection.name),
    }


def _index_resource() -> types.Resource:
    return types.Resource(
        uri=INDEX_URI,
        name="collections",
        title="Knowledge collections",
        description="Your knowledge collections: names, descriptions, counts and URIs.",
        mime_type=_JSON,
    )


def _collection_resource(collection: Collection) -> types.Resource:
    count = collection.document_count
    documents = f"{count} document" if count == 1 else f"{count} documents"
    return types.Resource(
        uri=collection_uri(collection.name),
        name=collection.name,
        title=f"Collection {collection.name}",
        description=f"{collection.description} ({documents})"
        if collection.description
        else documents,
        mime_type=_JSON,
    )


def _document_resource(collection: str, document: Document) -> types.Resource:
    return types.Resource(
        uri=document_uri(collection, document.id),
        name=document.id,
        title=document.title,
        description=f"{collection}: {document.source or document.title or document.id}",
        mime_type=_TEXT,
        size=len(document.text.encode()),
    )


def _json_contents(uri: str, body: Any) -> types.ReadResourceResult:
    text = orjson.dumps(body).decode()
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=_JSON, text=text)]
    )


def _page(
    listed: list[types.Resource], collection: str, after: str | None
) -> types.ListResourcesResult:
    token = orjson.dumps([collection, after])
    cursor = base64.urlsafe_b64encode(token).decode().rstrip("=")
    return types.ListResourcesResult(resources=listed, next_cursor=cursor)


def _decode_cursor(cursor: str) -> tuple[str, str | None]:
    """The collection and the document id a cursor resumes after, or `InvalidCursor`."""
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        decoded = None
    if (
        isinstance(decoded, list)
        and len(decoded) == 2
        and isinstance(decoded[0], str)
        and (decoded[1] is None or isinstance(decoded[1], str))
    ):
        return decoded[0], decoded[1]
    raise InvalidCursor(f"invalid cursor {cursor!r}: pass back a `nextCursor` as it came")
