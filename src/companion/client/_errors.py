"""Problem documents from the service, turned back into the library's own error classes."""

from __future__ import annotations

from typing import Any

import httpx

from companion.errors import (
    CompanionError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)

__all__ = ["raise_for_problem"]

_BY_STATUS: dict[int, type[CompanionError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    503: ServiceUnavailable,
}


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the matching `CompanionError` for a 4xx/5xx response; return quietly otherwise."""
    if response.status_code < 400:
        return
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    detail = str(body.get("detail") or response.reason_phrase)
    details = {
        "status": response.status_code,
        "code": body.get("code"),
        "request_id": body.get("request_id"),
    }
    if response.status_code == 422:
        errors = [
            FieldError(str(e.get("pointer", "")), str(e.get("message", "")), str(e.get("type", "")))
            for e in body.get("errors", [])
        ]
        raise ValidationFailed(detail, errors)
    if response.status_code == 429:
        retry_after_s = float(response.headers.get("retry-after", "1"))
        raise RateLimited(detail, retry_after_s=retry_after_s, details=details)
    error_class = _BY_STATUS.get(response.status_code, CompanionError)
    raise error_class(detail, details=details)
