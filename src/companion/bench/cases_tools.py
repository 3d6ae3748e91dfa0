"""Benchmark rows of `companion.tools`: the registry's call next to pydantic's `validate_call`, same run."""

from __future__ import annotations

import asyncio
import atexit

from companion.bench._case import Case, Operation, Target
from companion.tools import ToolCall, ToolRegistry

__all__ = ["cases"]

_GROUP = "tools"


def cases() -> list[Case]:
    """The tool rows of SPEC section 6, and the bare call as a floor (report only)."""
    return [
        Case(
            _GROUP,
            "add(5, 3) through registry.call, validated",
            ours=_ours_validated_call,
            peer=_peer_validate_call,
            peer_name="pydantic validate_call(add, strict) with a=5, b=3",
            # Issue #15: the peer is the same strict validation as a decorator, measured in the
            # same run; a bare call is no peer for a call that validates (it is reported below).
            target=Target(max_ratio=1.5, max_median_ns=15_000),
            seed_figure="90 µs",
            batch=200,
        ),
        Case(
            _GROUP,
            "plain Python call add(5, 3), unvalidated (the floor)",
            ours=_plain_call,
            batch=2000,
        ),
        Case(
            _GROUP,
            "cached pure tool call (hit)",
            ours=_ours_cached_call,
            target=Target(max_median_ns=3_000),
            seed_figure="10 µs",
            batch=200,
        ),
        Case(
            _GROUP,
            "batch of 10 tool calls in parallel",
            ours=_ours_batch,
            target=Target(max_median_ns=500_000),
            seed_figure="3.83 ms",
            batch=5,
        ),
    ]


def _registry(*, pure: bool) -> ToolRegistry:
    from companion.tools._builtins import _math

    registry = ToolRegistry()
    registry.register(_math.add, pure=pure)
    atexit.register(registry.close)
    return registry


def _ours_validated_call() -> Operation:
    registry = _registry(pure=False)
    call = registry.call
    arguments = {"a": 5, "b": 3}
    assert call("add", arguments).value == 8
    return lambda: call("add", arguments)


def _peer_validate_call() -> Operation:
    from pydantic import validate_call

    from companion.tools._builtins._math import add

    # Strict, as the registry validates: "5" or True is no float for either.
    validated = validate_call(config={"strict": True})(add)
    assert validated(a=5, b=3) == 8
    return lambda: validated(a=5, b=3)


def _plain_call() -> Operation:
    from companion.tools._builtins._math import add

    return lambda: add(5, 3)


def _ours_cached_call() -> Operation:
    registry = _registry(pure=True)
    call = registry.call
    arguments = {"a": 5, "b": 3}
    assert not call("add", arguments).cached
    assert call("add", arguments).cached
    return lambda: call("add", arguments)


def _ours_batch() -> Operation:
    # Ten different built-ins, registered impure so nothing is cached, as one parallel batch on
    # a running loop: what `POST /v1/tools/batch` does per request.
    from companion.tools._builtins import _lists, _math, _text

    registry = ToolRegistry()
    atexit.register(registry.close)
    for module in (_math, _text, _lists):
        for name in module.__all__:
            registry.register(getattr(module, name), pure=False)
    calls = [
        ToolCall("add", {"a": 5, "b": 3}),
        ToolCall("subtract", {"a": 5, "b": 3}),
        ToolCall("multiply", {"a": 5, "b": 3}),
        ToolCall("divide", {"a": 5, "b": 3}),
        ToolCall("power", {"base": 2, "exponent": 10}),
        ToolCall("sqrt", {"x": 16}),
        ToolCall("uppercase", {"text": "hello"}),
        ToolCall("count_words", {"text": "a b c"}),
        ToolCall("list_sum", {"numbers": [1, 2, 3]}),
        ToolCall("reverse_text", {"text": "abc"}),
    ]
    loop = asyncio.new_event_loop()
    atexit.register(loop.close)
    results = loop.run_until_complete(registry.acall_batch(calls))
    assert all(result.ok for result in results), results
    return lambda: loop.run_until_complete(registry.acall_batch(calls))
