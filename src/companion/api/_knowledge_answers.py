"""What `/v1/collections` answers, as pydantic models: the OpenAPI document (and so the clients'
generated types) declares these shapes.

The routes write their JSON with orjson from the knowledge base's own records (FastAPI's response
validation would cost every search a second walk of its hits); `tests/api/test_knowledge_answers.py`
holds every route's real answer to these models, extra fields forbidden, so neither side can drift.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from companion.api._answer import Answer

__all__ = [
    "CollectionDetail",
    "CollectionInfo",
    "CollectionListing",
    "DocumentPage",
    "EmbeddingBacklog",
    "EmbeddingModelInfo",
    "FileUploadReport",
    "SearchAnswer",
    "SearchHitInfo",
    "StoredDocument",
    "UploadProblem",
    "UploadReport",
]


class EmbeddingModelInfo(Answer):
    """The model a collection's vectors come from; a search with another one is refused."""

    model: str = Field(examples=["all-MiniLM-L6-v2"])
    version: str
    dimension: int = Field(examples=[384])


class CollectionInfo(Answer):
    """A collection of the caller's tenant."""

    name: str = Field(examples=["notes"])
    description: str
    created_at: float = Field(description="Unix time, seconds.")
    document_count: int
    chunk_count: int
    embedding: EmbeddingModelInfo | None = Field(
        description="The model of the collection's vectors; null while it has none (a service "
        "without a model searches it by BM25 only; one with a model gives it that model on its "
        "first vector or hybrid search or write, and embeds its chunks in the background)."
    )


class EmbeddingBacklog(Answer):
    """A collection's chunks that have a vector, and those still waiting for one."""

    pending: int
    embedded: int


class CollectionDetail(CollectionInfo):
    """A collection with its embedding queue's progress."""

    embeddings: EmbeddingBacklog


class CollectionListing(Answer):
    """Every collection of the caller's tenant, by name."""

    collections: list[CollectionInfo]


class StoredDocument(Answer):
    """A stored document: its text as parsed, and its chunk count."""

    id: str = Field(examples=["guide.pdf"])
    text: str
    title: str | None
    metadata: dict[str, Any]
    source: str | None
    content_hash: str = Field(
        description="sha256 of what the document's chunks depend on: an upsert of the same hash "
        "changes nothing."
    )
    chunk_count: int
    created_at: float = Field(description="Unix time, seconds.")
    updated_at: float = Field(description="Unix time, seconds.")


class DocumentPage(Answer):
    """A page of documents ordered by id; `next_after` (null on the last page) is the next
    page's `after`."""

    documents: list[StoredDocument]
    next_after: str | None


class SearchHitInfo(Answer):
    """One passage of a ranked document, with what a citation needs."""

    document_id: str
    chunk_id: str
    score: float = Field(description="The document's score (its passages share it).")
    text: str
    snippet: str | None = Field(
        description="HTML-escaped text with `<mark>` around matched terms; null without snippets."
    )
    title: str | None
    metadata: dict[str, Any]
    page: int | None = Field(description="The PDF page the passage is on (from 1).")
    headings: list[str] = Field(description="The heading path above the passage, outermost first.")


class SearchAnswer(Answer):
    """Passages in document order, best document first."""

    results: list[SearchHitInfo]
    took_ms: float = Field(description="Without `embedding_ms`.")
    embedding_ms: float = Field(description="Time spent embedding the query (vector, hybrid).")
    cached: bool
    warnings: list[str] = Field(description="E.g. a vector search answered by BM25, and why.")
    pending_embeddings: int = Field(description="Chunks not searchable by vector yet.")


class UploadProblem(Answer):
    """Why part of a file (or all of it) was left out: which file, line or page, and why."""

    file: str
    line: int | None
    message: str
    page: int | None


class FileUploadReport(Answer):
    """What one uploaded file gave."""

    file: str
    format: str | None = Field(description="The format it was read as; null if unreadable.")
    document_ids: list[str]
    written: int
    unchanged: int
    chunks_written: int
    problems: list[UploadProblem]


class UploadReport(Answer):
    """Each file's report, and totals over all files."""

    files: list[FileUploadReport]
    written: int
    unchanged: int
    problems: int = Field(description="How many problems the files' reports list.")
