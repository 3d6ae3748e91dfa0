"""One call's steps: encode and validate the arguments, derive the cache key, turn failures into results."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails, to_jsonable_python

from companion.errors import CompanionError, FieldError
from companion.tools._errors import ToolArgumentsInvalid, ToolError
from companion.tools._models import ToolErrorInfo
from companion.tools._tool import ToolRecord

__all__ = [
    "MEMO_MAX_ENTRIES",
    "arguments_error",
    "cache_key",
    "encode_arguments",
    "failure",
    "timeout_failure",
    "validate",
    "validated_arguments",
]

_log = logging.getLogger("companion.tools")
_SORT = orjson.OPT_SORT_KEYS
MEMO_MAX_ENTRIES = 4096
# Canonical arguments longer than this are hashed so keys stay short (and readable when short).
_KEY_MAX_CHARS = 160


def encode_arguments(name: str, arguments: object) -> bytes:
    """The raw JSON of `arguments` (a dict, or JSON text/bytes); keys sorted for dicts."""
    if type(arguments) is dict:
        try:
            return orjson.dumps(arguments, option=_SORT)
        except TypeError as exc:
            raise ToolArgumentsInvalid(
                f"{name}: arguments are not JSON ({exc})",
                [FieldError("", str(exc), "json_type")],
            ) from None
    if isinstance(arguments, bytes):
        return arguments
    if isinstance(arguments, str):
        return arguments.encode()
    if arguments is None:
        return b"{}"
    raise ToolArgumentsInvalid(
        f"{name}: arguments must be an object, got {type(arguments).__name__}",
        [FieldError("", "Input should be an object", "dict_type")],
    )


def validated_arguments(record: ToolRecord, arguments: object) -> dict[str, Any]:
    """Keyword arguments from a dict or raw JSON, with the semantics of validating its JSON form.

    A dict is validated as it is first (strict Python mode, ~40 % cheaper than encoding it and
    parsing the JSON back); only if that refuses it does the JSON form decide, because some values
    are valid only as JSON text (an ISO date string for a `date`, a list for a `tuple`). On
    JSON-shaped values the two agree (strict mode: no coercion, no NaN); Python-only values a
    JSON caller cannot send (bytes, a set under `Any`) are taken as given.
    """
    if type(arguments) is dict:
        try:
            kwargs = record.validate_python(arguments)
        except ValidationError as exc:
            non_finite = [
                e
                for e in exc.errors(include_url=False, include_input=False)
                if e["type"] == "finite_number"
            ]
            if non_finite:
                # orjson writes NaN and infinities as null, which an optional parameter would take
                # for "use the default": refuse them here, before the JSON form hides them.
                raise arguments_error(record.name, non_finite) from None
            return validate(record, encode_arguments(record.name, arguments))
        return _defaults_for_nulls(record, kwargs)
    return validate(record, encode_arguments(record.name, arguments))


def validate(record: ToolRecord, raw: bytes) -> dict[str, Any]:
    """Strictly validate raw JSON arguments into keyword arguments, or `ToolArgumentsInvalid`."""
    try:
        kwargs = record.validate_json(raw)
    except ValidationError as exc:
        raise arguments_error(
            record.name, exc.errors(include_url=False, include_input=False)
        ) from None
    return _defaults_for_nulls(record, kwargs)


def _defaults_for_nulls(record: ToolRecord, kwargs: dict[str, Any]) -> dict[str, Any]:
    if not record.null_means_default:
        return kwargs
    # null for an optional parameter means "use its default" (OpenAI strict mode sends it).
    skip = record.null_means_default
    return {k: v for k, v in kwargs.items() if v is not None or k not in skip}


def arguments_error(name: str, problems: list[ErrorDetails]) -> ToolArgumentsInvalid:
    """One `FieldError` per problem pydantic found, each with a JSON pointer to the argument."""
    errors = [
        FieldError(
            "".join(f"/{part}" for part in error["loc"]),
            error["msg"],
            error["type"],
        )
        for error in problems
    ]
    summary = "; ".join(
        f"{error['pointer'] or 'arguments'}: {error['message']}" for error in errors
    )
    return ToolArgumentsInvalid(f"invalid arguments for {name}: {summary}", errors)


def cache_key(record: ToolRecord, raw: bytes, kwargs: dict[str, Any]) -> str:
    """The canonical JSON of the validated arguments (hashed when long), memoised by raw bytes."""
    canonical = orjson.dumps(to_jsonable_python(kwargs), option=_SORT).decode()
    if len(canonical) > _KEY_MAX_CHARS:
        canonical = "#" + hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
    memo = record.memo
    if len(memo) >= MEMO_MAX_ENTRIES:
        memo.clear()  # a crude bound: the memo only saves validation, never changes a result
    memo[raw] = canonical
    return canonical


def failure(name: str, exc: BaseException) -> ToolErrorInfo:
    """What the caller sees of a tool's exception: its message and code, never the traceback."""
    if isinstance(exc, ToolArgumentsInvalid):
        return ToolErrorInfo(exc.code, exc.message, {"errors": list(exc.errors)})
    if isinstance(exc, ToolError | CompanionError):
        details = dict(exc.details)
        retry_after_s = getattr(exc, "retry_after_s", None)
        if retry_after_s is not None:  # a refused admission or a full queue: when to try again
            details.setdefault("retry_after_s", retry_after_s)
        return ToolErrorInfo(exc.code, exc.message, details)
    _log.warning("tool %s raised %s", name, type(exc).__name__, exc_info=exc)
    message = str(exc) or type(exc).__name__
    return ToolErrorInfo("tool_error", message, {"type": type(exc).__name__})


def timeout_failure(name: str, timeout_s: float) -> ToolErrorInfo:
    """The error of a call that ran past its timeout."""
    return ToolErrorInfo(
        "timeout", f"tool {name} did not finish within {timeout_s:g} s", {"timeout_s": timeout_s}
    )
