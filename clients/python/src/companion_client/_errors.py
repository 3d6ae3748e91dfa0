"""The client's own errors, and how a problem document from the service becomes one of them.

Every error this package raises is a `CompanionClientError`. A response with a problem document
(RFC 9457, `application/problem+json`) becomes an `APIError` chosen by the document's `type` first
(`urn:companion:error:<code>`: `session_not_found` is `SessionNotFound`), then by its HTTP status
(an unknown 404 code is still a `NotFound`). Leaves subclass the matching builtin where one exists,
so `except LookupError` catches a `NotFound`.

    CompanionClientError
    ├── TransportError                        no complete answer from the service
    │   ├── ConnectionFailed (ConnectionError) could not connect, or the connection broke
    │   ├── Timeout (TimeoutError)            no answer within the client's timeout
    │   └── IncompleteStream                  a streamed run ended before its result
    ├── LocalFileRefused (ValueError)         a local file not sent or not saved (a link, `..`, ...)
    ├── ToolFailed                            `ToolResult.unwrap()` of a call the tool failed
    └── APIError                              a problem document: status, code, title, detail, ...
        ├── BadRequest (400, 415, ValueError)
        │   └── ValidationFailed (422)        `errors`: one `FieldError` per bad field
        ├── Unauthorized (401)
        ├── Forbidden (403)
        ├── NotFound (404, 410, LookupError)
        │   ├── CollectionNotFound, DocumentNotFound, ToolNotFound
        │   ├── SessionNotFound, WorkspaceFileNotFound
        │   └── SessionEnded (410)            the session existed and has ended
        ├── Conflict (409)
        │   └── CollectionExists
        ├── PayloadTooLarge (413, 431)
        ├── RateLimited (429)                 `retry_after_s`
        │   └── SessionLimitReached           the tenant holds as many sessions as it may
        └── ServerError (5xx)
            └── ServiceUnavailable (503)      `retry_after_s`; not ready, busy, a dependency down
                └── SessionCapacityReached    this node holds as many sessions as it may
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

__all__ = [
    "APIError",
    "BadRequest",
    "CollectionExists",
    "CollectionNotFound",
    "CompanionClientError",
    "Conflict",
    "ConnectionFailed",
    "DocumentNotFound",
    "FieldError",
    "Forbidden",
    "IncompleteStream",
    "LocalFileRefused",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "SessionCapacityReached",
    "SessionEnded",
    "SessionLimitReached",
    "SessionNotFound",
    "Timeout",
    "ToolFailed",
    "ToolNotFound",
    "TransportError",
    "Unauthorized",
    "ValidationFailed",
    "WorkspaceFileNotFound",
    "error_from_problem",
    "error_from_response",
    "retry_after_seconds",
    "stream_error",
    "transport_error",
]

_TYPE_PREFIX = "urn:companion:error:"
_DETAIL_CHARS = 500  # of a body that is not a problem document (a proxy's HTML page, say)


class CompanionClientError(Exception):
    """Root of every error the client raises."""


class TransportError(CompanionClientError):
    """The request got no complete answer: nothing listened, the connection broke, or time ran
    out. `cause` is the HTTP library's own error."""

    def __init__(self, message: str, *, cause: Exception | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class ConnectionFailed(TransportError, ConnectionError):
    """Could not connect to the service, or the connection broke before the answer."""


class Timeout(TransportError, TimeoutError):
    """No answer within the client's `timeout_s`."""


class IncompleteStream(TransportError):
    """A streamed run ended before its `done` event (the connection or the service went away):
    unlike a `ConnectionFailed`, the run was sent and may have happened."""


class LocalFileRefused(CompanionClientError, ValueError):
    """A local file was not sent or not saved: not a regular file, a link on the way, a path that
    leaves its folder, or a file that exists and may not be replaced."""


class ToolFailed(CompanionClientError):
    """The tool itself failed (`ToolResult.ok` is false): its `code`, `message` and `details`."""

    def __init__(self, tool: str, code: str, message: str, details: Mapping[str, Any]) -> None:
        super().__init__(f"{tool}: {message}")
        self.tool = tool
        self.code = code
        self.message = message
        self.details = dict(details)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field of a 422: its JSON pointer (`/limits/wall_time_ms`), why, the error
    type, and where it was (`body`, `query`, ...)."""

    pointer: str
    message: str
    type: str
    location: str | None = None


class APIError(CompanionClientError):
    """The service answered with an error: the problem document's fields, and the whole document
    as `problem`. `str(error)` is its `detail`."""

    status_default: ClassVar[int] = 500

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        problem: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail)
        body = dict(problem or {})
        self.detail = detail
        self.status: int = status if status is not None else self.status_default
        self.problem: dict[str, Any] = body
        self.type: str = str(body.get("type", "about:blank"))
        self.code: str | None = _code_of(body)
        self.title: str = str(body.get("title", ""))
        self.instance: str | None = body.get("instance")
        self.request_id: str | None = body.get("request_id")
        self.trace_id: str | None = body.get("trace_id")
        self.headers: dict[str, str] = dict(headers or {})
        # The service's hint, or None: only `RateLimited` and `ServiceUnavailable` promise one.
        self.retry_after_s: float | None = retry_after_s

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, {self.detail!r})"


class BadRequest(APIError, ValueError):
    """The request is malformed (400), or of a kind the service does not take (415)."""

    status_default = 400


class ValidationFailed(BadRequest):
    """A field has the wrong type or value; `errors` names each by JSON pointer."""

    status_default = 422

    @property
    def errors(self) -> list[FieldError]:
        """The bad fields, as the service listed them."""
        return [
            FieldError(
                str(item.get("pointer", "")),
                str(item.get("message", "")),
                str(item.get("type", "")),
                item.get("location"),
            )
            for item in self.problem.get("errors") or ()
            if isinstance(item, Mapping)
        ]


class Unauthorized(APIError):
    """No API key, or one that is malformed, unknown, revoked or expired."""

    status_default = 401


class Forbidden(APIError):
    """The key lacks the scope this needs."""

    status_default = 403


class NotFound(APIError, LookupError):
    """No such resource, or it belongs to another tenant (the two are not told apart)."""

    status_default = 404


class CollectionNotFound(NotFound):
    """No collection of this name for the key's tenant."""


class DocumentNotFound(NotFound):
    """No document with this id in the collection."""


class ToolNotFound(NotFound):
    """No tool of this name, or it is disabled."""


class SessionNotFound(NotFound):
    """No session has this id, or it is another tenant's."""


class WorkspaceFileNotFound(NotFound):
    """No regular file has this path in the session's workspace."""


class SessionEnded(NotFound):
    """The session existed but has ended (expired, closed, or its process died); says why."""

    status_default = 410


class Conflict(APIError):
    """The request conflicts with the current state."""

    status_default = 409


class CollectionExists(Conflict):
    """`create_collection` with a name that is taken (`ensure_collection` does not mind)."""


class PayloadTooLarge(APIError):
    """The body (413) or the request's headers (431) are over the service's limit."""

    status_default = 413


class RateLimited(APIError):
    """Too many requests for this key; `retry_after_s` says when to try again."""

    status_default = 429


class SessionLimitReached(RateLimited):
    """The tenant holds as many sessions as it may; one must end first."""


class ServerError(APIError):
    """The service failed (5xx)."""

    status_default = 500


class ServiceUnavailable(ServerError):
    """Not ready, a queue is full, or a dependency is down (503); `retry_after_s` when known."""

    status_default = 503


class SessionCapacityReached(ServiceUnavailable):
    """The node holds as many sessions as it may."""


# The service's `code`s that have a class of their own; any other code goes by its status.
_BY_CODE: dict[str, type[APIError]] = {
    "collection_exists": CollectionExists,
    "collection_not_found": CollectionNotFound,
    "document_not_found": DocumentNotFound,
    "file_not_found": WorkspaceFileNotFound,
    "session_capacity": SessionCapacityReached,
    "session_ended": SessionEnded,
    "session_limit": SessionLimitReached,
    "session_not_found": SessionNotFound,
    "tool_not_found": ToolNotFound,
    "validation_failed": ValidationFailed,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: NotFound,
    413: PayloadTooLarge,
    415: BadRequest,
    422: ValidationFailed,
    429: RateLimited,
    431: PayloadTooLarge,
    503: ServiceUnavailable,
}


def _code_of(problem: Mapping[str, Any]) -> str | None:
    """The service's error code: from `type` (`urn:companion:error:<code>`), else `code`."""
    kind = problem.get("type")
    if isinstance(kind, str) and kind.startswith(_TYPE_PREFIX):
        return kind.removeprefix(_TYPE_PREFIX)
    code = problem.get("code")
    return code if isinstance(code, str) else None


def error_from_problem(
    status: int,
    problem: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    retry_after_s: float | None = None,
) -> APIError:
    """The `APIError` a problem document stands for: by its `type`, then by `status`."""
    code = _code_of(problem)
    kind = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if kind is None:
        kind = ServerError if status >= 500 else APIError
    detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
    return kind(
        str(detail),
        status=status,
        problem=problem,
        headers=headers,
        retry_after_s=retry_after_s,
    )


def error_from_response(response: httpx.Response, *, now_s: float | None = None) -> APIError:
    """The `APIError` of an error response whose body has been read (a problem document, or
    whatever a proxy on the way sent: its first characters become the detail)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text[:_DETAIL_CHARS].strip()
        body = {"status": response.status_code, "detail": text or response.reason_phrase}
    retry = retry_after_seconds(response.headers.get("retry-after"), now_s=now_s)
    return error_from_problem(
        response.status_code, body, headers=dict(response.headers), retry_after_s=retry
    )


def retry_after_seconds(value: str | None, *, now_s: float | None = None) -> float | None:
    """`Retry-After` in seconds: a number of seconds, or an HTTP date (a proxy's) measured from
    `now_s` (Unix time, default now); None when absent or unreadable. Never negative."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # `-0000` parses as naive; an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    now = time.time() if now_s is None else now_s
    return max(when.timestamp() - now, 0.0)


def transport_error(exc: httpx.TransportError) -> TransportError:
    """The client's error for the HTTP library's: `Timeout` or `ConnectionFailed`, its message
    naming the URL as `url: ErrorName: what happened`."""
    try:
        where = f"{exc.request.url}: "
    except RuntimeError:  # raised before a request existed
        where = ""
    message = f"{where}{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(message, cause=exc)
    return ConnectionFailed(message, cause=exc)


def stream_error(exc: httpx.TransportError) -> TransportError:
    """The client's error for a stream that broke after it began: `Timeout` when no event came
    within the client's timeout, else `IncompleteStream` (the run was sent and may have run)."""
    error = transport_error(exc)
    if isinstance(error, Timeout):
        return error
    return IncompleteStream(f"the stream broke before the run's result: {error}", cause=exc)
