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

__all__ = [
    "AsyncClient",
    "Client",
    "Execution",
    "InputFile",
    "ReturnedFile",
    "RichOutput",
    "StreamEvent",
    "raise_for_problem",
    "save_file",
]
