"""`/v1/collections`: collections, documents and search, always within the caller's tenant."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.responses import Response

from companion.api._answer import json_answer
from companion.api._auth import require
from companion.api._knowledge_answers import (
    CollectionDetail,
    CollectionInfo,
    CollectionListing,
    DocumentPage,
    SearchAnswer,
    StoredDocument,
    UploadReport,
)
from companion.api._state import State, app_state
from companion.errors import InvalidInput
from companion.keys import ApiKey
from companion.knowledge import (
    InvalidDocument,
    KnowledgeBase,
    ParseLimits,
    document_from_content,
)
from companion.telemetry import record_search, search_span

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections", tags=["knowledge"])
ReadKey = Annotated[ApiKey, Depends(require("knowledge:read"))]
WriteKey = Annotated[ApiKey, Depends(require("knowledge:write"))]


async def _knowledge(state: State) -> KnowledgeBase:
    return state.require_knowledge()


Knowledge = Annotated[KnowledgeBase, Depends(_knowledge)]


class CollectionCreate(BaseModel):
    """A new collection."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, examples=["notes"])
    description: str = Field("", max_length=1000, examples=["Meeting notes of the support team"])


class DocumentIn(BaseModel):
    """One document; `metadata` must be a JSON object (validated by the knowledge base)."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, min_length=1, max_length=256, examples=["faq-7"])
    text: str = Field(examples=["Refunds are processed within five working days."])
    title: str | None = Field(None, examples=["Refunds"])
    metadata: Any = Field(None, examples=[{"team": "support", "year": 2026}])
    source: str | None = None
    content_type: str | None = Field(
        None,
        max_length=200,
        description="What `text` is: `text/html` or `text/markdown` are parsed as an uploaded "
        "file would be (visible text, title, headings kept for citations); omitted, plain text.",
        examples=["text/html"],
    )


class DocumentsIn(BaseModel):
    """Several documents, written in one transaction."""

    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(min_length=1, max_length=1000)


class DocumentIds(BaseModel):
    """The ids of the written documents, in request order."""

    ids: list[str]


class SearchRequest(BaseModel):
    """A search; `filter` is documented in docs/knowledge.md."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(examples=["how long do refunds take"])
    mode: Literal["bm25", "vector", "hybrid"] = "bm25"
    k: int = Field(10, ge=1, le=100)
    filter: dict[str, Any] | None = None
    with_snippets: bool = True


@router.post(
    "",
    status_code=201,
    response_model=CollectionInfo,
    summary="Create a collection",
    responses={409: {"description": "The name is taken."}},
)
async def create_collection(body: CollectionCreate, kb: Knowledge, key: WriteKey) -> Response:
    """201 with the collection; 409 when the name is taken."""
    created = await kb.create_collection(key.tenant, body.name, body.description)
    return json_answer(created.to_dict(), 201)


class CollectionEnsure(BaseModel):
    """What a collection created by `PUT` gets; an existing one keeps its own."""

    model_config = ConfigDict(extra="forbid")
    description: str = Field("", max_length=1000, examples=["Notes an agent keeps"])


@router.put(
    "/{collection}",
    response_model=CollectionInfo,
    summary="Get or create a collection",
    responses={
        201: {"description": "Created.", "model": CollectionInfo},
        200: {"description": "It existed already."},
    },
)
async def ensure_collection(
    collection: str,
    kb: Knowledge,
    key: WriteKey,
    body: CollectionEnsure | None = None,
) -> Response:
    """Idempotent: 201 with the collection when this call created it, 200 when it existed (its
    description is left as it was)."""
    description = body.description if body is not None else ""
    found, created = await kb.ensure_collection(key.tenant, collection, description)
    return json_answer(found.to_dict(), 201 if created else 200)


@router.get("", response_model=CollectionListing, summary="List collections")
async def list_collections(kb: Knowledge, key: ReadKey) -> Response:
    """Every collection of the tenant, by name."""
    return json_answer(
        {"collections": [c.to_dict() for c in await kb.list_collections(key.tenant)]}
    )


@router.get("/{collection}", response_model=CollectionDetail, summary="Get a collection")
async def get_collection(collection: str, kb: Knowledge, key: ReadKey) -> Response:
    """The collection with its document and chunk counts, embedding model and queue progress."""
    body = (await kb.get_collection(key.tenant, collection)).to_dict()
    body["embeddings"] = (await kb.embedding_progress(key.tenant, collection)).to_dict()
    return json_answer(body)


@router.delete("/{collection}", status_code=204, summary="Delete a collection")
async def delete_collection(collection: str, kb: Knowledge, key: WriteKey) -> Response:
    """Delete the collection and all its documents."""
    await kb.delete_collection(key.tenant, collection)
    return Response(status_code=204)


@router.post(
    "/{collection}/documents",
    status_code=201,
    summary="Add or replace documents",
)
async def add_documents(
    collection: str, body: DocumentsIn | DocumentIn, kb: Knowledge, key: WriteKey
) -> DocumentIds:
    """One document or `{documents: [...]}`; all are written in one transaction or none is."""
    items = body.documents if isinstance(body, DocumentsIn) else [body]
    raw: list[Any] = []
    for item in items:
        if item.content_type is None:
            raw.append(item.model_dump(exclude_none=True))
            continue
        if item.metadata is not None and not isinstance(item.metadata, dict):
            raise InvalidDocument("metadata must be a JSON object")
        raw.append(
            await document_from_content(
                item.text,
                item.content_type,
                id=item.id,
                title=item.title,
                metadata=item.metadata,
                source=item.source,
            )
        )
    return DocumentIds(ids=await kb.upsert(key.tenant, collection, raw))


@router.get("/{collection}/documents", response_model=DocumentPage, summary="List documents")
async def list_documents(
    collection: str,
    kb: Knowledge,
    key: ReadKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> Response:
    """Documents ordered by id; pass `next_after` as `after` for the next page."""
    page = await kb.list_documents(key.tenant, collection, limit=limit, after=after)
    return json_answer(
        {"documents": [d.to_dict() for d in page.documents], "next_after": page.next_after}
    )


@router.get(
    "/{collection}/documents/{document_id:path}",
    response_model=StoredDocument,
    summary="Get a document",
)
async def get_document(collection: str, document_id: str, kb: Knowledge, key: ReadKey) -> Response:
    """The stored document."""
    return json_answer((await kb.get_document(key.tenant, collection, document_id)).to_dict())


@router.delete(
    "/{collection}/documents/{document_id:path}",
    status_code=204,
    summary="Delete a document",
)
async def delete_document(
    collection: str, document_id: str, kb: Knowledge, key: WriteKey
) -> Response:
    """Delete the document and its chunks."""
    await kb.delete_document(key.tenant, collection, document_id)
    return Response(status_code=204)


@router.post(
    "/{collection}/files",
    response_model=UploadReport,
    summary="Upload files: parsed, chunked and indexed",
    description="`multipart/form-data` with one or more parts named `files` (PDF, DOCX, HTML, "
    "Markdown, plain text, CSV, JSON lines: told apart by content type, name and content) and an "
    "optional `metadata` part (a JSON object added to every document). A whole file is one "
    "document named by its file name, its pages and headings kept for citations; each CSV row "
    "or JSON line is one document. A file or row that cannot be read is reported in `problems` "
    "(which file, line, page and why) and the rest is written: the answer is 200 whatever the "
    "files held. 413 above `COMPANION_KNOWLEDGE_MAX_UPLOAD_BYTES`.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                            "metadata": {"type": "string", "description": "A JSON object."},
                        },
                    }
                }
            },
        }
    },
)
async def upload_files(
    collection: str, http: Request, state: State, kb: Knowledge, key: WriteKey
) -> Response:
    """Each file's documents, problems and counts; totals over all files."""
    settings = state.settings
    await kb.get_collection(key.tenant, collection)  # 404 before reading any upload
    try:
        form = await http.form(
            max_files=settings.knowledge_max_upload_files,
            max_fields=10,
            max_part_size=settings.knowledge_max_upload_bytes,
        )
    except (MultiPartException, AssertionError, ValueError) as exc:
        # Starlette answers a malformed or over-limit form with a 400 of its own; ours names it.
        raise InvalidInput(f"the upload is not readable multipart/form-data: {exc}") from None
    try:
        uploads = [value for name, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise InvalidInput("send the files as multipart/form-data parts named `files`")
        metadata = _form_metadata(form.get("metadata"))
        reports = []
        for number, upload in enumerate(uploads, start=1):
            reports.append(
                await kb.ingest_file(
                    key.tenant,
                    collection,
                    await upload.read(),
                    filename=upload.filename or f"upload-{number}",
                    content_type=upload.content_type,
                    limits=ParseLimits(max_file_bytes=settings.knowledge_max_upload_bytes),
                    metadata=metadata,
                )
            )
    finally:
        await form.close()
    return json_answer(
        {
            "files": [report.to_dict() for report in reports],
            "written": sum(report.written for report in reports),
            "unchanged": sum(report.unchanged for report in reports),
            "problems": sum(len(report.problems) for report in reports),
        }
    )


def _form_metadata(raw: object) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise InvalidInput("`metadata` must be a form field holding a JSON object, not a file")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"`metadata` is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput("`metadata` must be a JSON object")
    return value


@router.post(
    "/{collection}/search",
    response_model=SearchAnswer,
    summary="Search a collection",
    description="400: empty query, bad filter, or vector search without an embedder.",
)
async def search(
    collection: str, body: SearchRequest, kb: Knowledge, key: ReadKey, http: Request
) -> Response:
    """`{results: [...], took_ms}`; `took_ms` excludes `embedding_ms` (the query embedding)."""
    span = search_span(
        app_state(http).telemetry, mode=body.mode, k=body.k, filtered=body.filter is not None
    )
    with span:
        result = await kb.search(
            key.tenant,
            collection,
            body.query,
            mode=body.mode,
            k=body.k,
            filter=body.filter,
            with_snippets=body.with_snippets,
        )
        record_search(span, result, collection=collection)
    return json_answer(result.to_dict())
