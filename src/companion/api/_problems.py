"""The one place errors become HTTP: every error renders as `application/problem+json` (RFC 9457)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from companion.api._context import log_ids, request_id_of, trace_id_of
from companion.errors import (
    CompanionError,
    FieldError,
    InvalidInput,
    Unauthorized,
    ValidationFailed,
)

__all__ = [
    "GUARDED_RESPONSES",
    "Problem",
    "install_error_handlers",
    "problem_body",
    "problem_response",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("companion.api")

# Codes and titles for framework-raised HTTP errors that never passed through a CompanionError.
_HTTP_CODES = {
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


class FieldProblem(BaseModel):
    """One invalid field of a 422."""

    pointer: str = Field(examples=["/limits/wall_time_ms"])
    message: str
    type: str
    location: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error is rendered."""

    type: str = Field(examples=["urn:companion:error:validation_failed"])
    title: str
    status: int
    detail: str
    instance: str
    code: str = Field(examples=["validation_failed"])
    request_id: str | None = None
    trace_id: str | None = Field(
        None,
        description="The request's OpenTelemetry trace (W3C, 32 hex digits), when tracing is on.",
    )
    errors: list[FieldProblem] | None = None
    details: dict[str, Any] | None = None


_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _problem(description: str) -> dict[str, Any]:
    # `model` puts the schema in the components; `content` names the media type we really send.
    return {"description": description, "model": Problem, "content": _PROBLEM_CONTENT}


# Errors any guarded route may answer; added to every route's OpenAPI responses.
GUARDED_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed JSON, or nested too deep."),
    401: _problem("Missing, malformed, unknown, revoked or expired API key."),
    403: _problem("The key lacks the scope this route needs."),
    404: _problem("No such resource (or it belongs to another tenant)."),
    413: _problem("The body is larger than the limit."),
    422: _problem("A field is invalid; `errors` names each by JSON pointer."),
    429: _problem("Rate limited; see `Retry-After` and `RateLimit-*`."),
    503: _problem("A dependency or the sandbox pool is unavailable, or busy."),
}


class ProblemResponse(Response):
    """A problem document serialised with orjson."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        """Serialise the problem document."""
        return orjson.dumps(content)


def problem_body(
    error: CompanionError,
    instance: str,
    request_id: str | None = None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """The RFC 9457 document for `error`; extension members `code`, `request_id`, `trace_id`
    (tracing on), `errors` and `details`."""
    body: dict[str, Any] = {
        "type": f"urn:companion:error:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.message,
        "instance": instance,
        "code": error.code,
    }
    if request_id is not None:
        body["request_id"] = request_id
    if trace_id is not None:
        body["trace_id"] = trace_id
    if isinstance(error, ValidationFailed):
        body["errors"] = error.errors
    if error.details:
        body["details"] = error.details
    return body


def problem_response(error: CompanionError, scope: Scope) -> ProblemResponse:
    """Render `error` for the request in `scope`, with `Retry-After` / `WWW-Authenticate` as due."""
    headers = dict(error.headers)
    retry_after_s = getattr(error, "retry_after_s", None)
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="companion"'
    body = problem_body(error, scope["path"], request_id_of(scope), trace_id_of(scope))
    return ProblemResponse(body, status_code=error.status, headers=headers)


def _field_errors(raw: Sequence[Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in raw:
        location = [str(part) for part in item.get("loc", ())]
        where, path = (location[0], location[1:]) if location else ("body", [])
        # RFC 6901: "" is the whole document, "/a/0" its field a, item 0.
        pointer = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)
        errors.append(FieldError(pointer, str(item.get("msg", "invalid")), str(item.get("type"))))
        errors[-1]["location"] = where
    return errors


async def _on_companion_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, CompanionError)
    return problem_response(exc, request.scope)


async def _on_request_validation(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    if any(item.get("type") == "json_invalid" for item in raw):
        error: CompanionError = InvalidInput("The request body is not valid JSON.")
    else:
        count = len(raw)
        noun = "field is" if count == 1 else "fields are"
        error = ValidationFailed(f"{count} {noun} invalid.", _field_errors(raw))
    return problem_response(error, request.scope)


async def _on_http_exception(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, CompanionError):
        # FastAPI wraps errors raised while reading the body (e.g. the streamed size limit) in a 400.
        return problem_response(exc.__cause__, request.scope)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    body = {
        "type": f"urn:companion:error:{code}",
        "title": title,
        "status": exc.status_code,
        "detail": exc.detail if isinstance(exc.detail, str) else title,
        "instance": request.url.path,
        "code": code,
    }
    request_id = request_id_of(request.scope)
    if request_id is not None:
        body["request_id"] = request_id
    trace_id = trace_id_of(request.scope)
    if trace_id is not None:
        body["trace_id"] = trace_id
    return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> ProblemResponse:
    # The traceback goes to the log only: never a stack trace, path or SQL to the client.
    _log.error(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra=log_ids(request.scope),
    )
    return problem_response(CompanionError("An internal error occurred."), request.scope)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the app can raise through the problem renderer."""
    app.add_exception_handler(CompanionError, _on_companion_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
