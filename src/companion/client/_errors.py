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

__all__ = ["problem_error", "raise_for_problem", "retry_after_seconds"]

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
    body.setdefault("detail", response.reason_phrase)
    raise problem_error(response.status_code, body, retry_after_seconds(response))


def retry_after_seconds(response: httpx.Response, default_s: float = 1.0) -> float:
    """`Retry-After` in seconds: a number, or an HTTP date (a proxy's), else `default_s`."""
    value = response.headers.get("retry-after")
    if value is None:
        return default_s
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default_s
    import datetime as dt

    return max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def problem_error(status: int, body: dict[str, Any], retry_after_s: float = 1.0) -> CompanionError:
    """The `CompanionError` a problem document (`status`, its JSON `body`) stands for."""
    detail = str(body.get("detail") or "error")
    details = {"status": status, "code": body.get("code"), "request_id": body.get("request_id")}
    if status == 422:
        errors = [
            FieldError(str(e.get("pointer", "")), str(e.get("message", "")), str(e.get("type", "")))
            for e in body.get("errors", [])
        ]
        return ValidationFailed(detail, errors)
    if status == 429:
        return RateLimited(detail, retry_after_s=retry_after_s, details=details)
    error_class = _BY_STATUS.get(status, CompanionError)
    return error_class(detail, details=details)
