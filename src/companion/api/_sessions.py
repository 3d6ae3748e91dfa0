"""`/v1/sessions`: stateful interpreters, their cells and their workspace files."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field, ValidationError

from companion.api._bodies import json_body, parsed_body
from companion.api._execute import ExecuteKey
from companion.api._session_relay import FORWARDED_BY
from companion.api._state import AppState, State
from companion.api._streaming import EVENT_STREAM, streamed_run, wants_events
from companion.errors import FieldError
from companion.execution import (
    CellRequest,
    CellResult,
    InvalidSnippet,
    SessionCreate,
    SessionInfo,
    SessionManager,
    SourceFile,
    WorkspaceListing,
    WorkspaceUpload,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
FilePath = Annotated[str, Path(min_length=1, max_length=900)]


class SessionList(BaseModel):
    """The caller's open sessions on every node, oldest first."""

    sessions: list[SessionInfo]
    unreachable_nodes: list[str] = Field(
        default_factory=list,
        description="Nodes holding some of the caller's sessions that did not give their list "
        "(unreachable, or refused the caller's key there, e.g. 429): their sessions are missing "
        "from `sessions`.",
    )


def _sessions(state: AppState) -> SessionManager:
    return state.require_executor().sessions


@router.post(
    "",
    status_code=201,
    response_model=SessionInfo,
    openapi_extra={"requestBody": json_body(SessionCreate)},
    summary="Open a session: an interpreter that keeps its state between cells",
    description="The session is a sandbox of its own (every isolation layer of a run) whose "
    "memory limit holds for its whole life; its other limits are each cell's defaults. It ends "
    "after `idle_timeout_s` without a call, at the node's maximum lifetime, or on `DELETE`. 429 "
    "`session_limit`: the key's tenant holds as many sessions as it may; 503 `session_capacity`: "
    "this node does (both say when to retry in `Retry-After`). Sessions end if the service "
    "restarts.",
)
async def create_session(http: Request, state: State, key: ExecuteKey) -> Response:
    """Open a session for the key's tenant."""
    request = parsed_body(SessionCreate, await http.body())
    info = await _sessions(state).create(key.tenant, request)
    await state.session_relay.owners.claim(info.id, key.tenant)
    return Response(info.model_dump_json(), status_code=201, media_type="application/json")


@router.get("", summary="The caller's open sessions, on every node")
async def list_sessions(http: Request, state: State, key: ExecuteKey) -> SessionList:
    """Open sessions of the key's tenant: this node's, and those other nodes hold (asked with
    the caller's key) when nodes share sessions."""
    sessions = _sessions(state).list_sessions(key.tenant)
    relay = state.session_relay
    if not relay.owners.enabled or http.headers.get(FORWARDED_BY.decode()) is not None:
        return SessionList(sessions=sessions)
    found, unlisted = await relay.sessions_elsewhere(key.tenant, http.scope["headers"])
    for info in found:
        try:
            sessions.append(SessionInfo.model_validate(info))
        except ValidationError:  # a node of another version: its entry is left out, not a 500
            unlisted.append(str(info.get("node", "?")))
    sessions.sort(key=lambda info: (info.created_at, info.id))
    return SessionList(sessions=sessions, unreachable_nodes=sorted(set(unlisted)))


@router.get("/{session_id}", summary="One session (an ended one says why it ended)")
async def get_session(session_id: SessionId, state: State, key: ExecuteKey) -> SessionInfo:
    """404 for an unknown id and for another tenant's session alike."""
    return _sessions(state).get(key.tenant, session_id)


@router.delete("/{session_id}", status_code=204, summary="End a session now")
async def delete_session(session_id: SessionId, state: State, key: ExecuteKey) -> Response:
    """Ends it even while a cell runs (that cell's answer says the session ended)."""
    await _sessions(state).delete(key.tenant, session_id)
    await state.session_relay.owners.release(session_id, key.tenant)
    return Response(status_code=204)


@router.post(
    "/{session_id}/execute",
    response_model=CellResult,
    responses=EVENT_STREAM,
    openapi_extra={"requestBody": json_body(CellRequest)},
    summary="Run a cell in the session",
    description="Variables, imports, the working directory and files persist between cells; "
    "the answer is `/v1/execute`'s result plus `execution_count`. A cell over its wall or CPU "
    "time (or its output cap) is interrupted (`KeyboardInterrupt`) and the session goes on; one "
    "that does not stop is killed with its session (`session_ended` says why; later calls get "
    "410). Cells of one session run one at a time, in order. `Accept: text/event-stream` "
    "streams the cell's output as `/v1/execute` does; a client that hangs up interrupts it.",
)
async def execute_cell(
    session_id: SessionId, http: Request, state: State, key: ExecuteKey
) -> Response:
    """Run one cell; user errors are reported in the result, with status 200."""
    request = parsed_body(CellRequest, await http.body())
    sessions = _sessions(state)
    limit = state.settings.execute_max_concurrent_per_key
    if wants_events(http):
        sessions.check(key.tenant, session_id, request)  # 404, 410, 422 before the stream
        state.in_flight.acquire(key.key_id, limit)
        return streamed_run(
            http,
            lambda on_output: sessions.execute(key.tenant, session_id, request, on_output),
            lambda: state.in_flight.release(key.key_id),
        )
    async with state.in_flight.slot(key.key_id, limit):
        result = await sessions.execute(key.tenant, session_id, request)
    return Response(result.model_dump_json(), media_type="application/json")


@router.get("/{session_id}/files", summary="The files of the session's workspace")
async def list_files(session_id: SessionId, state: State, key: ExecuteKey) -> WorkspaceListing:
    """Regular files under the workspace (the cells' starting directory), in path order."""
    return await _sessions(state).list_files(key.tenant, session_id)


@router.post(
    "/{session_id}/files",
    response_model=WorkspaceListing,
    openapi_extra={"requestBody": json_body(WorkspaceUpload)},
    summary="Write files (text or base64) into the session's workspace",
)
async def upload_files(
    session_id: SessionId, http: Request, state: State, key: ExecuteKey
) -> Response:
    """Replaces files of the same path; answers with the workspace's listing."""
    upload = parsed_body(WorkspaceUpload, await http.body())
    sessions = _sessions(state)
    await sessions.put_files(key.tenant, session_id, upload.files)
    listing = await sessions.list_files(key.tenant, session_id)
    return Response(listing.model_dump_json(), media_type="application/json")


@router.put(
    "/{session_id}/files/{path:path}",
    status_code=204,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
    summary="Write one file, its bytes as the body",
)
async def put_file(
    session_id: SessionId, path: FilePath, http: Request, state: State, key: ExecuteKey
) -> Response:
    """The body's bytes become the file at `path` (folders are made as needed)."""
    content = base64.b64encode(await http.body()).decode("ascii")
    try:
        file = SourceFile(name=path, content=content, encoding="base64")
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise InvalidSnippet(message, [FieldError("/path", message, "invalid_path")]) from None
    await _sessions(state).put_files(key.tenant, session_id, [file])
    return Response(status_code=204)


@router.get(
    "/{session_id}/files/{path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
    summary="Download one file of the session's workspace",
)
async def download_file(
    session_id: SessionId, path: FilePath, state: State, key: ExecuteKey
) -> Response:
    """The file's bytes, with its MIME type; 404 when there is no regular file at `path`."""
    file = await _sessions(state).read_file(key.tenant, session_id, path)
    return Response(base64.b64decode(file.content_base64), media_type=file.mime_type)


@router.delete("/{session_id}/files/{path:path}", status_code=204, summary="Delete one file")
async def delete_file(
    session_id: SessionId, path: FilePath, state: State, key: ExecuteKey
) -> Response:
    """404 when there is no file at `path`."""
    await _sessions(state).delete_file(key.tenant, session_id, path)
    return Response(status_code=204)
