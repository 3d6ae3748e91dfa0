"""What the MCP tests share: an official client over HTTP with a key, and knowledge put in place
through the service's own HTTP API or a local knowledge base (as `companion ingest` does)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from companion.config import load_settings
from companion.knowledge import build_knowledge_base

__all__ = ["COMPANION", "fill_locally", "fill_over_http", "http_client", "read_all_resources"]

# The installed script of the environment under test (the venv's).
COMPANION = str(Path(sys.executable).parent / "companion")


@asynccontextmanager
async def http_client(url: str, token: str) -> AsyncIterator[Client]:
    """The official client on the service's `/mcp` at `url`, with `token` as its bearer key."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


def fill_over_http(
    url: str,
    token: str,
    collection: str,
    documents: Sequence[dict[str, Any]],
    description: str = "",
) -> None:
    """Create `collection` and write `documents` through `/v1/collections` with `token`."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        made = http.put(f"/v1/collections/{collection}", json={"description": description})
        assert made.status_code in {200, 201}, made.text
        written = http.post(
            f"/v1/collections/{collection}/documents", json={"documents": list(documents)}
        )
        assert written.status_code == 201, written.text


async def fill_locally(
    data_dir: Path, collection: str, documents: Sequence[dict[str, Any]], description: str = ""
) -> None:
    """Write `documents` into the data directory's embedded store as tenant `default` (the one
    `companion ingest` and `companion mcp` use), then close it so a server may open it."""
    settings = load_settings(data_dir=data_dir, knowledge_embedder="none")
    knowledge = build_knowledge_base(settings, serving=False)
    await knowledge.start()
    try:
        await knowledge.ensure_collection("default", collection, description)
        await knowledge.upsert("default", collection, list(documents))
    finally:
        await knowledge.close()


async def read_all_resources(client: Client) -> tuple[list[str], int]:
    """Every resource URI `resources/list` gives, following its cursor; and how many pages."""
    uris: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await client.list_resources(cursor=cursor)
        pages += 1
        uris.extend(resource.uri for resource in page.resources)
        cursor = page.next_cursor
        if cursor is None:
            return uris, pages
