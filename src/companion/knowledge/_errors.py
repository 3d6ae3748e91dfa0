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
├── EmbedderRequired                    vector/hybrid search without an embedder
├── UnsupportedFormat (415)             a file of a type we do not parse (image, spreadsheet, .doc)
├── CorruptFile (422)                   a PDF or DOCX (by name, type or first bytes) we cannot open
├── EncryptedPdf (422)                  a PDF that needs a password to open
└── ImageOnlyPdf (422)                  a PDF without a text layer (scanned pages)
PayloadTooLarge
├── DocumentTooLarge
└── FileTooLarge                        a file over max_file_bytes, or a DOCX unpacking past its limits
ServiceUnavailable
├── SearchTimeout                       the query deadline passed
└── StoreInUse                          another process has the embedded store open
FeatureUnavailable
└── ParserUnavailable                   the `documents` extra is not installed
"""

from __future__ import annotations

from companion.errors import (
    Conflict,
    FeatureUnavailable,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)

__all__ = [
    "CollectionExists",
    "CollectionNotFound",
    "CorruptFile",
    "DocumentNotFound",
    "DocumentTooLarge",
    "EmbedderRequired",
    "EmbeddingModelMismatch",
    "EncryptedPdf",
    "FileTooLarge",
    "ImageOnlyPdf",
    "InvalidDocument",
    "InvalidFilter",
    "InvalidQuery",
    "ParserUnavailable",
    "SearchTimeout",
    "StoreInUse",
    "UnsupportedFormat",
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


class UnsupportedFormat(InvalidInput):
    """The file is of a type no parser reads (an image, a spreadsheet, a legacy `.doc`, ...)."""

    status = 415
    code = "unsupported_format"
    title = "Unsupported format"


class CorruptFile(InvalidInput):
    """The file is a PDF or DOCX by its name, declared type or first bytes, but cannot be opened as one."""

    status = 422
    code = "corrupt_file"
    title = "Corrupt file"


class EncryptedPdf(InvalidInput):
    """The PDF needs a password to open; PDFs restricted by an owner password only are read."""

    status = 422
    code = "encrypted_pdf"
    title = "Encrypted PDF"


class ImageOnlyPdf(InvalidInput):
    """No page of the PDF has a text layer (scanned pages): it needs OCR before it can be searched."""

    status = 422
    code = "image_only_pdf"
    title = "PDF without text"


class FileTooLarge(PayloadTooLarge):
    """The file is over `max_file_bytes`, or a DOCX would unpack past `max_unpacked_bytes` or entries."""

    code = "file_too_large"
    title = "File too large"


class ParserUnavailable(FeatureUnavailable):
    """Parsing this format needs the `documents` extra, which is not installed."""

    code = "parser_unavailable"
    title = "Parser unavailable"
