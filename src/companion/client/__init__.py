"""companion.client: a small Python client of the HTTP API (sync and async)."""

from companion.client._client import AsyncClient, Client
from companion.client._errors import raise_for_problem

__all__ = ["AsyncClient", "Client", "raise_for_problem"]
