"""JSON bodies parsed by pydantic-core straight from bytes, for the routes agents call all day.

FastAPI's own body handling (and its response validation) cost ~0.3 ms a run: these routes read
the body themselves, and document it in OpenAPI as FastAPI would have.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

__all__ = ["json_body", "parsed_body"]

_Model = TypeVar("_Model", bound=BaseModel)


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI `requestBody` of a route that parses its JSON body as `model` itself
    (self-contained, so no component has to be registered for it)."""
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})
    body = {key: value for key, value in schema.items() if key != "$defs"}
    return {
        "required": True,
        "content": {"application/json": {"schema": _inlined(body, definitions)}},
    }


def _inlined(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with each `{"$ref": "#/$defs/X"}` replaced by X: inside an OpenAPI document `#` is
    the document's root, where those refs resolve to nothing (openapi-typescript and other
    generators refuse them). The bodies' models are not recursive."""
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = definitions[ref.removeprefix("#/$defs/")]
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _inlined({**target, **siblings}, definitions)
    return {key: _inlined(value, definitions) for key, value in node.items()}


def parsed_body(model: type[_Model], body: bytes) -> _Model:
    """`body` as `model`; a 422 located as FastAPI locates body errors otherwise."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
