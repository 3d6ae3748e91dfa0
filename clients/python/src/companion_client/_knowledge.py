"""Knowledge's values: collections, documents, pages of documents, uploads and search results.

Each keeps the JSON it was decoded from as `raw`, so a field the service adds later is readable
before the client names it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Collection",
    "Document",
    "DocumentInput",
    "DocumentPage",
    "FileReport",
    "SearchHit",
    "SearchResult",
    "UploadResult",
    "document_json",
]


@dataclass(frozen=True, slots=True)
class Collection:
    """A named set of documents of the key's tenant. `embedding` names the model its vectors come
    from (None before any); `embeddings` is the background queue's progress (`pending`,
    `embedded`: from `get_collection` only); `created` is whether `ensure_collection` made it
    now (None from other calls)."""

    name: str
    description: str
    created_at: float
    document_count: int
    chunk_count: int
    embedding: dict[str, Any] | None = None
    embeddings: dict[str, int] | None = None
    created: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], *, created: bool | None = None) -> Collection:
        """Decode a collection of `/v1/collections`."""
        return cls(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            created_at=float(raw.get("created_at", 0.0)),
            document_count=int(raw.get("document_count", 0)),
            chunk_count=int(raw.get("chunk_count", 0)),
            embedding=raw.get("embedding"),
            embeddings=raw.get("embeddings"),
            created=created,
            raw=dict(raw),
        )


@dataclass(frozen=True, slots=True)
class DocumentInput:
    """A document to add: its text, and optionally an id (generated when omitted), a title,
    metadata (a JSON object that search filters read), a source, and a `content_type`
    (`text/html` or `text/markdown` are parsed as an uploaded file would be)."""

    text: str
    id: str | None = None
    title: str | None = None
    metadata: Mapping[str, Any] | None = None
    source: str | None = None
    content_type: str | None = None


def document_json(document: DocumentInput | Mapping[str, Any]) -> dict[str, Any]:
    """The request's form of a document: a `DocumentInput` without its unset fields, or a
    mapping as it is."""
    if not isinstance(document, DocumentInput):
        return dict(document)
    body: dict[str, Any] = {"text": document.text}
    for name in ("id", "title", "source", "content_type"):
        value = getattr(document, name)
        if value is not None:
            body[name] = value
    if document.metadata is not None:
        body["metadata"] = dict(document.metadata)
    return body


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
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Document:
        """Decode a document of `/v1/collections/{c}/documents`."""
        return cls(
            id=str(raw["id"]),
            text=str(raw.get("text", "")),
            title=raw.get("title"),
            metadata=dict(raw.get("metadata") or {}),
            source=raw.get("source"),
            content_hash=str(raw.get("content_hash", "")),
            chunk_count=int(raw.get("chunk_count", 0)),
            created_at=float(raw.get("created_at", 0.0)),
            updated_at=float(raw.get("updated_at", 0.0)),
            raw=dict(raw),
        )


@dataclass(frozen=True, slots=True)
class DocumentPage:
    """One page of documents by id; `next_after` is the `after` of the next page (None on the
    last). Iterates over its documents."""

    documents: list[Document]
    next_after: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DocumentPage:
        """Decode `GET /v1/collections/{c}/documents`."""
        documents = [Document.from_json(item) for item in raw.get("documents", [])]
        return cls(documents, raw.get("next_after"))

    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)

    def __len__(self) -> int:
        return len(self.documents)


@dataclass(frozen=True, slots=True)
class FileReport:
    """What became of one uploaded file: its format, the documents written (or `unchanged`: the
    same content was there), the chunks written, and `problems` (a row, a page or the whole file
    that could not be read: `file`, `line`, `page`, `message`)."""

    file: str
    format: str | None
    document_ids: list[str]
    written: int
    unchanged: int
    chunks_written: int
    problems: list[dict[str, Any]]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FileReport:
        """Decode one item of an upload's `files`."""
        return cls(
            file=str(raw.get("file", "")),
            format=raw.get("format"),
            document_ids=[str(item) for item in raw.get("document_ids", [])],
            written=int(raw.get("written", 0)),
            unchanged=int(raw.get("unchanged", 0)),
            chunks_written=int(raw.get("chunks_written", 0)),
            problems=[dict(item) for item in raw.get("problems", [])],
        )


@dataclass(frozen=True, slots=True)
class UploadResult:
    """`upload_files`' answer: a report per file, and the totals (`problems` counts them)."""

    files: list[FileReport]
    written: int
    unchanged: int
    problems: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> UploadResult:
        """Decode `POST /v1/collections/{c}/files`."""
        return cls(
            files=[FileReport.from_json(item) for item in raw.get("files", [])],
            written=int(raw.get("written", 0)),
            unchanged=int(raw.get("unchanged", 0)),
            problems=int(raw.get("problems", 0)),
            raw=dict(raw),
        )


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One passage found: its document and chunk, score (higher is better), text, `snippet`
    (HTML-escaped, `<mark>` around matched terms), the document's title and metadata, and where
    to cite it: its PDF `page` and the `headings` above it."""

    document_id: str
    chunk_id: str
    score: float
    text: str
    snippet: str | None
    title: str | None
    metadata: dict[str, Any]
    page: int | None = None
    headings: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SearchHit:
        """Decode one item of a search's `results`."""
        return cls(
            document_id=str(raw["document_id"]),
            chunk_id=str(raw.get("chunk_id", "")),
            score=float(raw.get("score", 0.0)),
            text=str(raw.get("text", "")),
            snippet=raw.get("snippet"),
            title=raw.get("title"),
            metadata=dict(raw.get("metadata") or {}),
            page=raw.get("page"),
            headings=tuple(str(item) for item in raw.get("headings") or ()),
            raw=dict(raw),
        )


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Hits best first; `took_ms` excludes `embedding_ms` (embedding the query); `cached` when
    the service answered from its cache; `warnings` (a hybrid search served by BM25 alone, say);
    `pending_embeddings`: chunks not yet searchable by vector. Iterates over its hits."""

    hits: list[SearchHit]
    took_ms: float
    embedding_ms: float
    cached: bool
    warnings: list[str]
    pending_embeddings: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SearchResult:
        """Decode `POST /v1/collections/{c}/search`."""
        return cls(
            hits=[SearchHit.from_json(item) for item in raw.get("results", [])],
            took_ms=float(raw.get("took_ms", 0.0)),
            embedding_ms=float(raw.get("embedding_ms", 0.0)),
            cached=bool(raw.get("cached")),
            warnings=[str(item) for item in raw.get("warnings", [])],
            pending_embeddings=int(raw.get("pending_embeddings", 0)),
            raw=dict(raw),
        )

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)
