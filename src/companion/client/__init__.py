"""companion.client: a small Python client of the HTTP API (sync and async)."""

from companion.client._client import AsyncClient, Client
from companion.client._errors import raise_for_problem
from companion.client._execution import (
    Execution,
    InputFile,
    ReturnedFile,
    RichOutput,
    StreamEvent,
    save_file,
)
from companion.client._sessions import AsyncSession, FileListing, Session, SessionFile

__all__ = [
    "AsyncClient",
    "AsyncSession",
    "Client",
    "Execution",
    "FileListing",
    "InputFile",
    "ReturnedFile",
    "RichOutput",
    "Session",
    "SessionFile",
    "StreamEvent",
    "raise_for_problem",
    "save_file",
]
