"""From a function's signature to a strict argument validator and JSON schemas, built once."""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired, Required

from pydantic import ConfigDict, Field, PydanticSchemaGenerationError, TypeAdapter
from pydantic.errors import PydanticInvalidForJsonSchema, PydanticUserError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError, to_jsonable_python
from typing_extensions import TypedDict

from companion.tools._docstrings import DocInfo
from companion.tools._errors import InvalidToolDefinition

__all__ = ["ToolSchema", "build_schema"]

# JSON-schema semantics: no coercion ("1.5" and true are not numbers), no unknown keys, and no
# NaN or infinity (JSON has no such numbers; a Python caller must not pass what JSON cannot).
_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
_make_typed_dict: Any = TypedDict  # called with computed fields, which type checkers cannot follow
_ACCEPTED_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """A tool's validator (raw JSON arguments in, keyword arguments out) and its schemas."""

    arguments: TypeAdapter[dict[str, Any]]
    input_schema: dict[str, Any]
    # Optional parameters whose type has no null: JSON null means "use the default" (OpenAI's
    # strict mode sends null for an optional parameter the model leaves out).
    null_means_default: frozenset[str]
    output_schema: dict[str, Any] | None
    output: TypeAdapter[Any] | None


def build_schema(fn: Callable[..., Any], name: str, doc: DocInfo) -> ToolSchema:
    """Describe `fn`'s parameters and result, or raise `InvalidToolDefinition` saying why not."""
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise InvalidToolDefinition(f"tool {name!r}: cannot read its signature ({exc})") from None
    fields: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    null_means_default: set[str] = set()
    for param in signature.parameters.values():
        hint = _hint(name, param, hints)
        optional = param.default is not inspect.Parameter.empty
        if optional:
            defaults[param.name] = param.default
            if not _accepts_none(hint):
                hint = hint | None
                null_means_default.add(param.name)
        description = doc.params.get(param.name)
        if description and not _has_description(hint):
            hint = Annotated[hint, Field(description=description)]
        fields[param.name] = NotRequired[hint] if optional else Required[hint]
    # A TypedDict (not a model) validates ~2x faster and returns the keyword arguments directly.
    arguments_type = _make_typed_dict(f"{_camel(name)}Arguments", fields)
    arguments_type.__pydantic_config__ = _STRICT
    try:
        adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(arguments_type)
        input_schema = adapter.json_schema()
    except (PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, PydanticUserError) as exc:
        raise InvalidToolDefinition(
            f"tool {name!r}: a parameter type has no JSON schema ({exc})"
        ) from None
    _finish_properties(input_schema, defaults)
    output, output_schema = _output(name, hints, doc)
    return ToolSchema(adapter, input_schema, frozenset(null_means_default), output_schema, output)


def _hint(name: str, param: inspect.Parameter, hints: dict[str, Any]) -> Any:
    if param.kind not in _ACCEPTED_KINDS:
        raise InvalidToolDefinition(
            f"tool {name!r}: parameter {param.name!r} is {param.kind.description}; a tool takes "
            "named parameters only (no *args, **kwargs or positional-only parameters)"
        )
    if param.name not in hints:
        raise InvalidToolDefinition(
            f"tool {name!r}: parameter {param.name!r} has no type annotation; annotate it so "
            "its JSON schema and validation can be built"
        )
    return hints[param.name]


def _accepts_none(hint: Any) -> bool:
    try:
        TypeAdapter(hint, config=_STRICT).validate_python(None)
    except Exception:  # any refusal (or an unbuildable type) means "no"
        return False
    return True


def _has_description(hint: Any) -> bool:
    # `Annotated[T, Field(description=...)] | None` keeps its description inside the union.
    candidates = (
        [hint, *typing.get_args(hint)] if typing.get_origin(hint) is not Annotated else [hint]
    )
    return any(
        isinstance(meta, FieldInfo) and meta.description
        for candidate in candidates
        if typing.get_origin(candidate) is Annotated
        for meta in candidate.__metadata__
    )


def _finish_properties(schema: dict[str, Any], defaults: dict[str, Any]) -> None:
    properties = schema.get("properties", {})
    for prop in properties.values():
        # `Annotated[int, Field(description=...)] | None` puts the description on the int branch.
        for branch in prop.get("anyOf", ()):
            if "description" in branch and "description" not in prop:
                prop["description"] = branch.pop("description")
    for param, default in defaults.items():
        # A default with no JSON form is simply not shown.
        with contextlib.suppress(PydanticSerializationError):
            properties[param]["default"] = to_jsonable_python(default)


def _output(
    name: str, hints: dict[str, Any], doc: DocInfo
) -> tuple[TypeAdapter[Any] | None, dict[str, Any] | None]:
    hint = hints.get("return", inspect.Signature.empty)
    if hint is inspect.Signature.empty or hint is None or hint is type(None):
        return None, None
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(hint)
        schema = adapter.json_schema(mode="serialization")
    except (PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, PydanticUserError) as exc:
        raise InvalidToolDefinition(
            f"tool {name!r}: its return type has no JSON schema ({exc})"
        ) from None
    if doc.returns and "description" not in schema:
        schema["description"] = doc.returns
    return adapter, schema


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))
