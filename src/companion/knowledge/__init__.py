"""companion.knowledge: collections of documents searched by BM25, vectors or both; see docs/knowledge.md."""

from companion.knowledge._build import build_knowledge_base
from companion.knowledge._chunking import Chunker, TextSpan
from companion.knowledge._embedder import Embedder
from companion.knowledge._embedding_loader import ModelDirectory, load_embedder
from companion.knowledge._errors import (
    CollectionExists,
    CollectionNotFound,
    DocumentNotFound,
    DocumentTooLarge,
    EmbedderRequired,
    EmbeddingModelMismatch,
    InvalidDocument,
    InvalidFilter,
    InvalidQuery,
    SearchTimeout,
    StoreInUse,
)
from companion.knowledge._file_documents import FileIngest, document_from_content
from companion.knowledge._formats import html_to_text, read_documents
from companion.knowledge._knowledge_base import EmbeddingProgress, KnowledgeBase
from companion.knowledge._models import (
    Collection,
    Document,
    DocumentInput,
    DocumentSection,
    EmbeddingInfo,
    IngestProgress,
    Page,
    SearchHit,
    SearchMode,
    SearchResult,
)
from companion.knowledge._onnx_embedder import OnnxEmbedder
from companion.knowledge._parsing import ParseLimits, ParseProblem, parse_file
from companion.knowledge._sqlite_store import SqliteStore
from companion.knowledge._store import Store

__all__ = [
    "Chunker",
    "Collection",
    "CollectionExists",
    "CollectionNotFound",
    "Document",
    "DocumentInput",
    "DocumentNotFound",
    "DocumentSection",
    "DocumentTooLarge",
    "Embedder",
    "EmbedderRequired",
    "EmbeddingInfo",
    "EmbeddingModelMismatch",
    "EmbeddingProgress",
    "FileIngest",
    "IngestProgress",
    "InvalidDocument",
    "InvalidFilter",
    "InvalidQuery",
    "KnowledgeBase",
    "ModelDirectory",
    "OnnxEmbedder",
    "Page",
    "ParseLimits",
    "ParseProblem",
    "SearchHit",
    "SearchMode",
    "SearchResult",
    "SearchTimeout",
    "SqliteStore",
    "Store",
    "StoreInUse",
    "TextSpan",
    "build_knowledge_base",
    "document_from_content",
    "html_to_text",
    "load_embedder",
    "parse_file",
    "read_documents",
]
