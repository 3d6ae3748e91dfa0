"""The one error hierarchy of Companion BaaS.

Every error a caller can see is a `CompanionError` carrying an HTTP `status` and a stable machine `code`;
`companion.api` maps them to `application/problem+json` in one place. Leaf errors are named after the
condition and subclass the matching builtin where one exists, so library users can catch either.

    CompanionError (500 internal_error)
    ├── ConfigError (500 config_invalid)                      settings rejected at start-up
    ├── InvalidInput (400 invalid_input, ValueError)
    │   └── ValidationFailed (422 validation_failed)          carries `errors` with a JSON pointer each
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found, LookupError)
    ├── Conflict (409 conflict)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── RateLimited (429 rate_limited)                        carries `retry_after_s`
    ├── ServiceUnavailable (503 unavailable)
    │   ├── Busy (503 busy)                                   queue full; carries `retry_after_s`
    │   └── DependencyUnavailable (503 dependency_unavailable) Redis, PostgreSQL, ... unreachable
    ├── UpstreamFailed (502 upstream_failed)                  another node broke off mid-call
    └── FeatureUnavailable (501 feature_unavailable)          an optional extra is not installed

Subsystems add their leaves under these (e.g. `ToolNotFound(NotFound)`), never new roots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "Busy",
    "CompanionError",
    "ConfigError",
    "Conflict",
    "DependencyUnavailable",
    "FeatureUnavailable",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "UpstreamFailed",
    "ValidationFailed",
]


class CompanionError(Exception):
    """Root of every error Companion raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        # HTTP headers the response should carry (e.g. RateLimit-*); ignored outside HTTP.
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return self.message


class ConfigError(CompanionError):
    """A setting has a value that is not allowed."""

    code = "config_invalid"
    title = "Invalid configuration"


class InvalidInput(CompanionError, ValueError):
    """The request or argument is malformed."""

    status = 400
    code = "invalid_input"
    title = "Invalid input"


class FieldError(dict[str, str]):
    """One invalid field: `pointer` (RFC 6901 JSON pointer), `message` and `type`."""

    def __init__(self, pointer: str, message: str, type: str = "invalid") -> None:
        super().__init__(pointer=pointer, message=message, type=type)


class ValidationFailed(InvalidInput):
    """Input parsed but failed validation; `errors` names each bad field."""

    status = 422
    code = "validation_failed"
    title = "Validation failed"

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors: list[FieldError] = list(errors)


class Unauthorized(CompanionError):
    """No credentials, or credentials that are not valid."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(CompanionError):
    """Valid credentials that lack the scope this needs."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(CompanionError, LookupError):
    """The thing asked for does not exist (or is not visible to this tenant)."""

    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(CompanionError):
    """The request conflicts with the current state."""

    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(CompanionError):
    """The request body is larger than the configured limit."""

    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class _RetryableError(CompanionError):
    """An error the caller may retry after `retry_after_s` seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float = 1.0,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, details=details, headers=headers)
        self.retry_after_s = retry_after_s


class RateLimited(_RetryableError):
    """Too many requests for this key in the current window."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(CompanionError):
    """The service cannot serve this now."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"


class Busy(_RetryableError, ServiceUnavailable):
    """A bounded queue is full; retry after `retry_after_s`."""

    code = "busy"
    title = "Busy"


class DependencyUnavailable(ServiceUnavailable):
    """A configured dependency (Redis, PostgreSQL, ...) cannot be reached."""

    code = "dependency_unavailable"
    title = "Dependency unavailable"


class UpstreamFailed(CompanionError):
    """Another node took the call and broke off before answering: it may have run, so unlike a
    503 this is no invitation to send it again blindly."""

    status = 502
    code = "upstream_failed"
    title = "Upstream failed"


class FeatureUnavailable(CompanionError):
    """An optional part is not installed; the message names the extra to install."""

    status = 501
    code = "feature_unavailable"
    title = "Feature unavailable"
