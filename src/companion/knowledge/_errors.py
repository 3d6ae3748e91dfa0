"""The knowledge subsystem's leaves of the `companion.errors` tree.

NotFound
├── CollectionNotFound                  no such collection for this tenant
└── DocumentNotFound
Conflict
├── CollectionExists
└── EmbeddingModelMismatch              the collection was embedded with another model
InvalidInput
├── InvalidQuery                        empty query, bad mode, k out of range
├── InvalidFilter                       unknown operator or value type
├── InvalidDocument                     no text, metadata not an object, bad id, bad UTF-8
└── EmbedderRequired                    vector/hybrid search without an embedder
PayloadTooLarge
└── DocumentTooLarge
ServiceUnavailable
├── SearchTimeout                       the query deadline passed
└── StoreInUse                          another process has the embedded store open
"""

from __future__ import annotations

from companion.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, ServiceUnavailable

__all__ = [
    "CollectionExists",
    "CollectionNotFound",
    "DocumentNotFound",
    "DocumentTooLarge",
    "EmbedderRequired",
    "EmbeddingModelMismatch",
    "InvalidDocument",
    "InvalidFilter",
    "InvalidQuery",
    "SearchTimeout",
    "StoreInUse",
]


class CollectionNotFound(NotFound):
    """No collection of that name exists for this tenant."""

    code = "collection_not_found"
    title = "Collection not found"


class DocumentNotFound(NotFound):
    """No document with that id exists in the collection."""

    code = "document_not_found"
    title = "Document not found"


class CollectionExists(Conflict):
    """A collection of that name already exists for this tenant."""

    code = "collection_exists"
    title = "Collection exists"


class EmbeddingModelMismatch(Conflict):
    """The collection's vectors come from another embedding model; `companion reindex` re-embeds."""

    code = "embedding_model_mismatch"
    title = "Embedding model mismatch"


class InvalidQuery(InvalidInput):
    """The search request cannot be run as given."""

    code = "invalid_query"
    title = "Invalid query"


class InvalidFilter(InvalidInput):
    """The metadata filter uses an unknown operator or an unsupported value type."""

    code = "invalid_filter"
    title = "Invalid filter"


class InvalidDocument(InvalidInput):
    """The document cannot be stored as given."""

    code = "invalid_document"
    title = "Invalid document"


class EmbedderRequired(InvalidInput):
    """Vector and hybrid search need an embedding model, and none is configured."""

    code = "embedder_required"
    title = "Embedder required"


class DocumentTooLarge(PayloadTooLarge):
    """The document's text is larger than `max_document_bytes`."""

    code = "document_too_large"
    title = "Document too large"


class SearchTimeout(ServiceUnavailable):
    """The search did not finish before its deadline."""

    code = "search_timeout"
    title = "Search timed out"


class StoreInUse(ServiceUnavailable):
    """Another process has the embedded store open: it serves one process at a time."""

    code = "store_in_use"
    title = "Knowledge store in use"
