"""Errors of the execution subsystem (leaves of `companion.errors`)."""

from __future__ import annotations

from companion.errors import Busy, FieldError, ServiceUnavailable, ValidationFailed

__all__ = [
    "ExecutorBusy",
    "InvalidSnippet",
    "LimitAboveMaximum",
    "SandboxUnavailable",
    "UnknownLanguage",
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
