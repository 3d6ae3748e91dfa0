"""Checks on what a request sends into a sandbox (code and files), shared by runs and sessions."""

from __future__ import annotations

from collections.abc import Sequence

from companion.config import Settings
from companion.errors import FieldError
from companion.execution._errors import InvalidSnippet
from companion.execution._models import SourceFile

__all__ = ["check_code", "check_files", "file_triples"]


def check_code(source: str, max_code_bytes: int, pointer: str = "/code") -> None:
    """`InvalidSnippet` for code that is empty, not UTF-8 or above `max_code_bytes`."""
    if not source.strip():
        raise InvalidSnippet("The code is empty.", [FieldError(pointer, "empty", "empty")])
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidSnippet(
            "The code is not valid UTF-8.", [FieldError(pointer, "not UTF-8", "encoding")]
        ) from None
    if size > max_code_bytes:
        message = f"The code is {size} bytes; the limit is {max_code_bytes}."
        raise InvalidSnippet(message, [FieldError(pointer, message, "too_large")])


def check_files(files: Sequence[SourceFile], settings: Settings) -> None:
    """`InvalidSnippet` for more files, or more bytes of them, than the settings allow."""
    most = settings.execution_max_input_files
    if len(files) > most:
        message = f"{len(files)} files were sent; the limit is {most}."
        raise InvalidSnippet(message, [FieldError("/files", message, "too_many")])
    total = 0
    for index, file in enumerate(files):
        try:
            total += file.size_bytes
        except UnicodeEncodeError:
            message = f"file {file.name!r} is not valid UTF-8 text"
            raise InvalidSnippet(
                message, [FieldError(f"/files/{index}/content", message, "encoding")]
            ) from None
    limit = settings.execution_max_input_bytes
    if total > limit:
        message = f"The files hold {total} bytes; the limit is {limit}."
        raise InvalidSnippet(message, [FieldError("/files", message, "too_large")])


def file_triples(files: Sequence[SourceFile]) -> list[tuple[str, str, bool]]:
    """The files as the sandbox takes them: (path, text or base64, is base64)."""
    return [(f.name, f.content, f.encoding == "base64") for f in files]
