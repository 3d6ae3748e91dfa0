"""Registration, strict validation, calls, timeouts, batches, caching and tenancy of `ToolRegistry`."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import date
from typing import Annotated

import pytest
from pydantic import Field

from companion.cache import TieredCache
from companion.monitoring import Monitor
from companion.tools import (
    InvalidToolDefinition,
    ToolAlreadyRegistered,
    ToolArgumentsInvalid,
    ToolCall,
    ToolError,
    ToolNotFound,
    ToolRegistry,
    current_tenant,
    tool,
)


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(pure=True, category="math")
    def add(a: float, b: float) -> float:
        """Add two numbers.

        Args:
            a: The first addend.
            b: The second addend.
        """
        return a + b

    @registry.tool
    def greet(name: str, punctuation: str = "!") -> str:
        """Greet someone."""
        return f"hello {name}{punctuation}"

    @registry.tool
    def explode(message: str) -> None:
        """Always fails."""
        raise RuntimeError(message)

    return registry


def test_schema_from_hints_and_docstring(registry: ToolRegistry) -> None:
    info = registry.get("add")
    assert info.description == "Add two numbers."
    assert info.input_schema["properties"]["a"] == {
        "description": "The first addend.",
        "title": "A",
        "type": "number",
    }
    assert info.input_schema["required"] == ["a", "b"]
    assert info.input_schema["additionalProperties"] is False
    assert info.output_schema == {"type": "number"}
    assert info.pure
    assert info.read_only
    assert info.idempotent


@pytest.mark.parametrize(
    ("arguments", "pointer", "kind"),
    [
        ({"a": "1.5", "b": 1}, "/a", "float_type"),
        ({"a": True, "b": 1}, "/a", "float_type"),
        ({"a": 1}, "/b", "missing"),
        ({"a": 1, "b": 2, "c": 3}, "/c", "extra_forbidden"),
        ('{"a": 1, "b": ', "", "json_invalid"),
        ("[1, 2]", "", "dict_type"),
    ],
)
def test_strict_validation_names_the_field_and_reason(
    registry: ToolRegistry, arguments: object, pointer: str, kind: str
) -> None:
    with pytest.raises(ToolArgumentsInvalid) as caught:
        registry.call("add", arguments)  # type: ignore[arg-type]
    assert caught.value.errors[0]["pointer"] == pointer
    assert caught.value.errors[0]["type"] == kind
    assert caught.value.status == 422


def test_raw_json_and_ints_are_accepted(registry: ToolRegistry) -> None:
    assert registry.call("add", b'{"a": 5, "b": 3}').value == 8.0
    assert registry.call("add", '{"b": 3, "a": 5}').value == 8.0


def test_null_for_an_optional_parameter_means_its_default(registry: ToolRegistry) -> None:
    assert registry.call("greet", {"name": "Ada", "punctuation": None}).value == "hello Ada!"
    assert "null" in str(registry.get("greet").input_schema["properties"]["punctuation"])


def test_a_raising_tool_is_a_failed_result_without_traceback(registry: ToolRegistry) -> None:
    result = registry.call("explode", {"message": "boom"})
    assert not result.ok
    assert result.error is not None
    assert (result.error.code, result.error.message) == ("tool_error", "boom")
    assert "Traceback" not in str(result.as_dict())


def test_tool_error_carries_its_code() -> None:
    registry = ToolRegistry()

    @registry.tool
    def refuse() -> int:
        """Refuses."""
        raise ToolError("not today", code="refused", details={"retry": "tomorrow"})

    error = registry.call("refuse").error
    assert error is not None
    assert (error.code, error.message, error.details) == (
        "refused",
        "not today",
        {"retry": "tomorrow"},
    )


def test_unknown_and_disabled_tools_raise_not_found(registry: ToolRegistry) -> None:
    with pytest.raises(ToolNotFound, match="no tool named"):
        registry.call("nope")
    registry.disable("math")
    with pytest.raises(ToolNotFound, match="disabled"):
        registry.call("add", {"a": 1, "b": 2})
    assert [info.name for info in registry.list()] == ["explode", "greet"]
    assert not registry.get("add").enabled
    registry.enable("math")
    assert registry.call("add", {"a": 1, "b": 2}).ok


def test_discovery(registry: ToolRegistry) -> None:
    assert registry.categories() == {"general": 2, "math": 1}
    assert [info.name for info in registry.list(category="math")] == ["add"]
    assert [info.name for info in registry.search("two NUMBERS")] == ["add"]
    assert registry.search("nothing matches this") == []


def test_registration_refuses_what_cannot_be_described() -> None:
    registry = ToolRegistry()

    def variadic(*args: int) -> int:
        """Sums."""
        return sum(args)

    def untyped(x):  # type: ignore[no-untyped-def]
        """Untyped."""
        return x

    def undocumented(x: int) -> int:
        return x

    with pytest.raises(InvalidToolDefinition, match=r"\*args"):
        registry.register(variadic)
    with pytest.raises(InvalidToolDefinition, match="no type annotation"):
        registry.register(untyped)
    with pytest.raises(InvalidToolDefinition, match="no description"):
        registry.register(undocumented)
    with pytest.raises(InvalidToolDefinition, match="must be 1-64"):
        registry.register(lambda: 1, name="bad name", description="x")
    registry.register(undocumented, description="Echo.")
    with pytest.raises(ToolAlreadyRegistered):
        registry.register(undocumented, description="Echo.")


def test_docstring_styles_and_annotated_descriptions() -> None:
    @tool(category="styles")
    def numpy_style(x: int, y: Annotated[int, Field(description="From Field.")]) -> int:
        """Numpy style.

        Parameters
        ----------
        x : int
            The x value.
        y : int
            Overridden by the Field description.
        """
        return x + y

    def sphinx_style(x: int) -> int:
        """Sphinx style.

        :param x: The x value.
        """
        return x

    registry = ToolRegistry()
    registry.register(numpy_style)
    registry.register(sphinx_style)
    props = registry.get("numpy_style").input_schema["properties"]
    assert props["x"]["description"] == "The x value."
    assert props["y"]["description"] == "From Field."
    assert registry.get("numpy_style").category == "styles"
    assert (
        registry.get("sphinx_style").input_schema["properties"]["x"]["description"]
        == "The x value."
    )


def test_pure_tools_are_cached_and_impure_ones_are_not(registry: ToolRegistry) -> None:
    first = registry.call("add", {"a": 5, "b": 3})
    second = registry.call("add", {"b": 3, "a": 5.0})  # same validated arguments
    assert (first.cached, second.cached, second.value) == (False, True, 8.0)
    assert not registry.call("greet", {"name": "a"}).cached
    assert not registry.call("greet", {"name": "a"}).cached
    hits = registry.monitor.get("companion_tools_cache_hits_total")
    assert hits.labels("add").value == 1  # type: ignore[attr-defined]


def test_cache_is_namespaced_per_tenant() -> None:
    cache = TieredCache(namespace="t")
    registry = ToolRegistry(cache=cache)
    calls: list[float] = []

    @registry.tool(pure=True)
    def square(x: float) -> float:
        """Square."""
        calls.append(x)
        return x * x

    assert not registry.call("square", {"x": 3}, tenant="alice").cached
    assert registry.call("square", {"x": 3}, tenant="alice").cached
    assert not registry.call("square", {"x": 3}, tenant="bob").cached
    assert calls == [3.0, 3.0]
    assert cache.get('t:alice:tools:square:{"x":3.0}') == 9.0
    assert cache.invalidate("t:alice:tools:*") == 1
    assert not registry.call("square", {"x": 3}, tenant="alice").cached


def test_failures_are_not_cached() -> None:
    registry = ToolRegistry()
    outcomes = iter([RuntimeError("first"), 2.0])

    @registry.tool(pure=True)
    def flaky(x: int) -> float:
        """Fails once."""
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert not registry.call("flaky", {"x": 1}).ok
    assert registry.call("flaky", {"x": 1}).value == 2.0


def test_metrics_count_calls_errors_and_latency(registry: ToolRegistry) -> None:
    monitor = registry.monitor
    assert isinstance(monitor, Monitor)
    registry.call("explode", {"message": "x"})
    registry.call("greet", {"name": "x"})
    assert monitor.get("companion_tools_calls_total").labels("explode").value == 1  # type: ignore[attr-defined]
    errors = monitor.get("companion_tools_errors_total")
    assert errors.labels("explode", "tool_error").value == 1  # type: ignore[attr-defined]
    assert monitor.get("companion_tools_duration_seconds").labels("greet").total().count == 1  # type: ignore[attr-defined]


def test_sync_timeout_in_the_pool_and_call_may_only_lower_it() -> None:
    registry = ToolRegistry()
    release = threading.Event()

    @registry.tool(timeout_s=30)
    def blocks() -> str:
        """Waits for the test."""
        release.wait(10)
        return "done"

    try:
        result = registry.call("blocks", timeout_s=0.05)  # real-time: a thread cannot be faked
        assert result.error is not None
        assert result.error.code == "timeout"
    finally:
        release.set()
        registry.close()


async def test_async_timeout_and_isolation_in_a_batch() -> None:
    registry = ToolRegistry()
    never = asyncio.Event()

    @registry.tool
    async def hang() -> None:
        """Never finishes."""
        await never.wait()

    @registry.tool
    async def echo(x: int) -> int:
        """Echo."""
        return x

    results = await registry.acall_batch(
        [
            ToolCall("echo", {"x": 1}, id="one"),
            ToolCall("hang", {}, id="slow"),
            ToolCall("missing", {}),
            ToolCall("echo", {"x": "bad"}),
            {"tool": "echo", "arguments": {"x": 5}},
        ],
        timeout_s=0.02,  # real-time: the hanging call must be cut by its own timeout
    )
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert [r.id for r in results] == ["one", "slow", None, None, None]
    assert [r.error.code for r in results if r.error] == [
        "timeout",
        "tool_not_found",
        "invalid_arguments",
    ]
    assert results[3].error is not None
    assert results[3].error.details["errors"][0]["pointer"] == "/x"
    assert results[4].value == 5


class _InFlight:
    """Counts calls in flight and holds them all until every one has started."""

    def __init__(self, expected: int) -> None:
        self.now = self.peak = 0
        self.all_started = asyncio.Event()
        self.expected = expected

    async def visit(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        if self.peak >= self.expected:
            self.all_started.set()
        await self.all_started.wait()
        self.now -= 1


async def test_batch_runs_async_tools_concurrently_in_order() -> None:
    registry = ToolRegistry()
    flight = _InFlight(10)

    @registry.tool
    async def slow(i: int) -> int:
        """Waits for the others."""
        await flight.visit()
        return i

    # If calls ran one after another, the first would wait forever for the other nine.
    results = await asyncio.wait_for(
        registry.acall_batch([ToolCall("slow", {"i": i}) for i in range(10)]), 5
    )
    assert [r.value for r in results] == list(range(10))
    assert flight.peak == 10


async def test_batch_respects_max_concurrency() -> None:
    registry = ToolRegistry()
    peak = now = 0

    @registry.tool
    async def step(i: int) -> int:
        """Yields a few times."""
        nonlocal peak, now
        now += 1
        peak = max(peak, now)
        for _ in range(3):
            await asyncio.sleep(0)
        now -= 1
        return i

    results = await registry.acall_batch(
        [ToolCall("step", {"i": i}) for i in range(12)], max_concurrency=3
    )
    assert [r.value for r in results] == list(range(12))
    assert peak == 3


def test_sync_call_of_an_async_tool_and_sync_batch() -> None:
    registry = ToolRegistry()

    @registry.tool
    async def double(x: int) -> int:
        """Double."""
        return 2 * x

    assert registry.call("double", {"x": 2}).value == 4
    assert [
        r.value for r in registry.call_batch([ToolCall("double", {"x": i}) for i in range(3)])
    ] == [0, 2, 4]


def test_injected_clock_sets_durations() -> None:
    ticks = iter([10.0, 10.25])
    timed = ToolRegistry(clock=lambda: next(ticks))

    @timed.tool
    def ident(x: int) -> int:
        """Identity."""
        return x

    assert timed.call("ident", {"x": 1}).duration_ms == 250.0


def test_bad_tenant_is_refused(registry: ToolRegistry) -> None:
    with pytest.raises(ValueError, match="tenant"):
        registry.call("add", {"a": 1, "b": 2}, tenant="a:b*")


def schedule(day: date, span: tuple[int, int], ratio: float = 1.0) -> str:
    """Describe a schedule.

    Args:
        day: The day.
        span: First and last hour.
        ratio: A factor.
    """
    return f"{day.isoformat()} {span[0]}-{span[1]} x{ratio}"


def test_a_dict_gets_the_json_forms_its_schema_allows() -> None:
    # Python-mode validation of a dict refuses an ISO string for a date and a list for a tuple;
    # the registry then lets the JSON form decide, as for raw JSON from a remote caller.
    registry = ToolRegistry()
    registry.register(schedule)
    from_dict = registry.call("schedule", {"day": "2026-11-27", "span": [9, 17]})
    from_json = registry.call("schedule", '{"day": "2026-11-27", "span": [9, 17]}')
    assert from_dict.value == from_json.value == "2026-11-27 9-17 x1.0"
    native = {"day": date(2026, 11, 27), "span": (9, 17)}
    assert registry.call("schedule", native).value == from_dict.value


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_dict_cannot_pass_numbers_json_has_not(bad: float) -> None:
    registry = ToolRegistry()
    registry.register(schedule)
    with pytest.raises(ToolArgumentsInvalid) as caught:
        registry.call("schedule", {"day": "2026-11-27", "span": [9, 17], "ratio": bad})
    assert caught.value.errors[0]["pointer"] == "/ratio"


def test_a_sync_tool_sees_the_tenant_it_is_called_for() -> None:
    registry = ToolRegistry()

    @registry.tool
    def whoami() -> str:
        """The tenant this call acts for."""
        return current_tenant()

    @registry.tool
    def relay(tenant: str) -> str:
        """Call `whoami` for a tenant from inside a call.

        Args:
            tenant: Whom to ask for.
        """
        return str(registry.call("whoami", tenant=tenant).value)

    assert registry.call("whoami").value == "default"
    assert registry.call("whoami", tenant="acme").value == "acme"
    assert registry.call("relay", {"tenant": "acme"}, tenant="acme").value == "acme"
    assert registry.call("relay", {"tenant": "zeta"}, tenant="acme").value == "zeta"
    assert current_tenant() == "default"
