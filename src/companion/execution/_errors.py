"""Errors of the execution subsystem (leaves of `companion.errors`)."""

from __future__ import annotations

from companion.errors import (
    Busy,
    FieldError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)

__all__ = [
    "ExecutorBusy",
    "InvalidSnippet",
    "LimitAboveMaximum",
    "SandboxUnavailable",
    "SessionCapacityReached",
    "SessionEnded",
    "SessionLimitReached",
    "SessionNotFound",
    "UnknownLanguage",
    "WorkspaceFileNotFound",
]


class UnknownLanguage(ValidationFailed):
    """No runtime answers to this language name or alias."""

    code = "unknown_language"
    title = "Unknown language"

    def __init__(self, language: str, known: list[str]) -> None:
        message = f"Unknown language {language!r}; available: {', '.join(sorted(known))}."
        super().__init__(message, [FieldError("/language", message, "unknown_language")])


class LimitAboveMaximum(ValidationFailed):
    """A requested limit is above the runtime's maximum (requests may only lower limits)."""

    code = "limit_above_maximum"
    title = "Limit above maximum"


class InvalidSnippet(ValidationFailed):
    """The code is empty, too large or not encodable as UTF-8."""

    code = "invalid_snippet"
    title = "Invalid snippet"


class ExecutorBusy(Busy):
    """Every sandbox is busy and the queue in front of them is full."""

    code = "executor_busy"
    title = "Executor busy"


class SandboxUnavailable(ServiceUnavailable):
    """The host offers no isolation layer, or the sandbox pool cannot start."""

    code = "sandbox_unavailable"
    title = "Sandbox unavailable"


class SessionNotFound(NotFound):
    """No session has this id, or it is another tenant's (the two are not told apart)."""

    code = "session_not_found"
    title = "Session not found"


class SessionEnded(NotFound):
    """The session existed but has ended (expired, closed, or its process died); says why."""

    status = 410
    code = "session_ended"
    title = "Session ended"


class WorkspaceFileNotFound(NotFound):
    """No regular file has this path in the session's workspace."""

    code = "file_not_found"
    title = "File not found"


class SessionLimitReached(RateLimited):
    """The tenant holds as many sessions as it may; one must end first."""

    code = "session_limit"
    title = "Too many sessions"


class SessionCapacityReached(Busy):
    """This node holds as many sessions as it may."""

    code = "session_capacity"
    title = "No session capacity"
