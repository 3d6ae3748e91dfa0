"""Checking names, documents and search parameters before anything is written or run."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from companion.errors import InvalidInput
from companion.knowledge._errors import DocumentTooLarge, InvalidDocument, InvalidQuery
from companion.knowledge._models import DocumentInput, DocumentSection, SearchMode

__all__ = ["MODES", "check_document", "check_k", "check_mode", "check_name", "check_tenant"]

MODES: tuple[SearchMode, ...] = ("bm25", "vector", "hybrid")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
MAX_ID_CHARS = 256
MAX_TITLE_CHARS = 1000


def check_name(name: object) -> str:
    """A collection name: 1-64 letters, digits, `_`, `.`, `-`, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"collection name {name!r} is invalid: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_tenant(tenant: object) -> str:
    """A tenant id follows the collection-name rule (it becomes part of cache keys)."""
    if not isinstance(tenant, str) or not _NAME.fullmatch(tenant):
        raise InvalidInput(f"tenant {tenant!r} is invalid")
    return tenant


def check_mode(mode: object) -> SearchMode:
    """One of `bm25`, `vector`, `hybrid`."""
    for known in MODES:
        if mode == known:
            return known
    raise InvalidQuery(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")


def check_k(k: object, max_k: int) -> int:
    """A result count in [1, max_k]."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise InvalidQuery(f"k must be an integer from 1 to {max_k}, got {k!r}")
    return k


def _utf8_size(text: str, what: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        # Lone surrogates (e.g. "\\ud800" in JSON) are not text that UTF-8 can carry.
        raise InvalidDocument(f"{what} is not valid UTF-8 (position {exc.start})") from None


def check_document(raw: DocumentInput | Mapping[str, Any], max_bytes: int) -> DocumentInput:
    """A valid `DocumentInput` (id generated when absent), or a typed error naming the problem."""
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"id", "text", "title", "metadata", "source"}
        if unknown:
            raise InvalidDocument(f"unknown document field(s): {', '.join(sorted(unknown))}")
        raw = DocumentInput(
            text=raw.get("text"),  # type: ignore[arg-type]
            id=raw.get("id"),
            title=raw.get("title"),
            metadata=raw.get("metadata", {}),
            source=raw.get("source"),
        )
    if not isinstance(raw.text, str) or not raw.text.strip():
        raise InvalidDocument("document text must be a non-empty string")
    size = _utf8_size(raw.text, "document text")
    if size > max_bytes:
        raise DocumentTooLarge(
            f"document text is {size} bytes; the limit is {max_bytes} (max_document_bytes)"
        )
    doc_id = raw.id if raw.id is not None else uuid.uuid4().hex
    if (
        not isinstance(doc_id, str)
        or not doc_id
        or len(doc_id) > MAX_ID_CHARS
        or not doc_id.isprintable()
    ):
        raise InvalidDocument(
            f"document id must be 1-{MAX_ID_CHARS} printable characters, got {doc_id!r}"
        )
    _utf8_size(doc_id, "document id")
    for field, value, limit in (
        ("title", raw.title, MAX_TITLE_CHARS),
        ("source", raw.source, 4096),
    ):
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise InvalidDocument(
                f"document {field} must be a string of at most {limit} characters"
            )
        if value is not None:
            _utf8_size(value, f"document {field}")
    if not isinstance(raw.metadata, dict):
        raise InvalidDocument("metadata must be a JSON object")
    try:
        metadata = orjson.loads(orjson.dumps(raw.metadata))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidDocument(f"metadata is not JSON: {exc}") from None
    _check_sections(raw.sections, len(raw.text))
    return DocumentInput(raw.text, doc_id, raw.title, metadata, raw.source, raw.sections)


def _check_sections(sections: Sequence[DocumentSection], length: int) -> None:
    """Sections (from a parser) lie in the text, in order, without overlapping."""
    end = 0
    for section in sections:
        if not (end <= section.start_char <= section.end_char <= length):
            raise InvalidDocument(
                f"section [{section.start_char}, {section.end_char}) is out of order or outside "
                f"the document's {length} characters"
            )
        if section.page is not None and (
            not isinstance(section.page, int) or isinstance(section.page, bool) or section.page < 1
        ):
            raise InvalidDocument(
                f"a section's page must be a positive integer, got {section.page!r}"
            )
        if any(not isinstance(h, str) or len(h) > MAX_TITLE_CHARS for h in section.headings):
            raise InvalidDocument(
                f"a section's headings must be strings of at most {MAX_TITLE_CHARS} characters"
            )
        end = section.end_char
