"""The base of the answer models that routes declare in OpenAPI, and the answer those routes write."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

__all__ = ["Answer", "json_answer"]


class Answer(BaseModel):
    """An answer's shape: every field named, no other allowed, so the OpenAPI document (and the
    clients' types generated from it) says exactly what comes back (`additionalProperties: false`)."""

    model_config = ConfigDict(extra="forbid")


def json_answer(body: Any, status_code: int = 200) -> Response:
    """`body` written by orjson: the routes agents call all day skip FastAPI's response
    validation and encoding; their `response_model` documents the shape (tests hold the two
    together)."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")
