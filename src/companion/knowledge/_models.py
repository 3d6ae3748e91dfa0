"""The values the knowledge base takes and returns: collections, documents, chunks, search hits and
results, and ingest progress."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "ChunkRecord",
    "Collection",
    "Document",
    "DocumentInput",
    "DocumentSection",
    "EmbeddingInfo",
    "IngestProgress",
    "Page",
    "PreparedChunk",
    "PreparedDocument",
    "ScoredChunk",
    "ScoredDocument",
    "SearchHit",
    "SearchMode",
    "SearchResult",
]

SearchMode = Literal["bm25", "vector", "hybrid"]


@dataclass(frozen=True, slots=True)
class EmbeddingInfo:
    """The model a collection's vectors come from; searching with another one is an error."""

    model: str
    version: str
    dimension: int


@dataclass(frozen=True, slots=True)
class Collection:
    """A named set of documents belonging to one tenant."""

    tenant: str
    name: str
    description: str
    created_at: float
    document_count: int = 0
    chunk_count: int = 0
    embedding: EmbeddingInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the tenant, which the caller already knows)."""
        body = asdict(self)
        del body["tenant"]
        return body


@dataclass(frozen=True, slots=True)
class DocumentSection:
    """A part of a document's text that users cite: its page (PDF) and heading path (Markdown,
    HTML, DOCX). Chunks never cross a section's bounds, so each chunk has one page and heading."""

    start_char: int
    end_char: int
    page: int | None = None
    headings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DocumentInput:
    """A document to store; `id` is generated when omitted."""

    text: str
    id: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    sections: tuple[DocumentSection, ...] = ()


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document."""

    id: str
    text: str
    title: str | None
    metadata: dict[str, Any]
    source: str | None
    content_hash: str
    chunk_count: int
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of documents; pass `next_after` back as `after` for the next page."""

    documents: list[Document]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class PreparedChunk:
    """A chunk ready to store: its text, where it sits in the document, and its vector if any."""

    ordinal: int
    text: str
    start_char: int
    end_char: int
    vector: bytes | None = None
    page: int | None = None
    headings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A validated, chunked (and maybe embedded) document: what a store writes in one transaction."""

    id: str
    text: str
    title: str | None
    metadata: dict[str, Any]
    source: str | None
    content_hash: str
    chunks: list[PreparedChunk]


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A store's hit before fusion: the chunk's store key and its score (higher is better)."""

    key: int
    score: float


@dataclass(frozen=True, slots=True)
class ScoredDocument:
    """A document ranked by BM25 over its whole text, with its best passages (chunks) for the
    query, best first. A document is ranked whole, so words spread over several chunks count
    together; the chunks only say where to read."""

    key: int
    score: float
    chunks: tuple[ScoredChunk, ...]


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A chunk with its document's fields, as fetched for a result list."""

    key: int
    document_id: str
    ordinal: int
    text: str
    title: str | None
    metadata: dict[str, Any]
    page: int | None = None
    headings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result; `snippet` is HTML-escaped text with `<mark>` around matched terms."""

    document_id: str
    chunk_id: str
    score: float
    text: str
    snippet: str | None
    title: str | None
    metadata: dict[str, Any]
    # Where the passage is, to cite it: its PDF page, and the headings above it.
    page: int | None = None
    headings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Progress of a bulk ingest, reported after each committed batch."""

    documents_done: int
    documents_skipped: int
    chunks_written: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Hits best first; `took_ms` excludes `embedding_ms`, the time spent embedding the query."""

    results: list[SearchHit]
    took_ms: float
    embedding_ms: float
    cached: bool
    warnings: tuple[str, ...] = ()
    pending_embeddings: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The HTTP response body."""
        return {
            "results": [hit.to_dict() for hit in self.results],
            "took_ms": round(self.took_ms, 3),
            "embedding_ms": round(self.embedding_ms, 3),
            "cached": self.cached,
            "warnings": list(self.warnings),
            "pending_embeddings": self.pending_embeddings,
        }
