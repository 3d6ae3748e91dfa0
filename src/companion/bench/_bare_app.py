"""The HTTP peer: a bare FastAPI endpoint answering what `POST /v1/tools/add/invoke` answers.

No middleware, no key, no rate limit, no cache: FastAPI and uvicorn alone, so the HTTP rows show
what our service costs on top of the framework.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

__all__ = ["app"]

app = FastAPI()


class _Invocation(BaseModel):
    arguments: dict[str, Any] = {}


@app.post("/v1/tools/{name}/invoke")
async def invoke(name: str, body: _Invocation) -> dict[str, Any]:
    """Add the two arguments and answer in our result shape."""
    result = body.arguments.get("a", 0) + body.arguments.get("b", 0)
    return {
        "tool": name,
        "ok": True,
        "value": result,
        "error": None,
        "duration_ms": 0.0,
        "cached": True,
        "id": None,
    }
