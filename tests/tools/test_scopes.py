"""Tools that act through another capability declare its scope; a `ToolGate` admits their calls.

The gate here is the in-memory implementation of the protocol (the service's own, on API keys and
rate limits, is tested over HTTP in tests/api/test_tools_scopes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from companion.errors import RateLimited
from companion.tools import (
    ToolGate,
    ToolRegistry,
    ToolScopeMissing,
    register_builtins,
    tool,
)


class CountingGate:
    """Allows `scopes`; admits at most `limit` calls at once, or refuses every one when `full`."""

    def __init__(self, *scopes: str, limit: int = 1_000, full: bool = False) -> None:
        self.scopes = set(scopes)
        self.limit = limit
        self.full = full
        self.running = 0
        self.peak = 0
        self.admitted: list[str] = []

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    @contextlib.asynccontextmanager
    async def admit(self, scope: str) -> AsyncIterator[None]:
        if self.full or self.running >= self.limit:
            raise RateLimited(f"no {scope} slot left", retry_after_s=2.0)
        self.admitted.append(scope)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            self.running -= 1


def _nothing() -> Any:
    raise AssertionError("not called")


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()
    register_builtins(registry, executor=_nothing, knowledge=_nothing)
    return registry


def test_the_gate_protocol_is_met_by_the_in_memory_gate() -> None:
    gate: ToolGate = CountingGate("execute")
    assert gate.allows("execute")


def test_tools_acting_through_a_capability_declare_its_scope(registry: ToolRegistry) -> None:
    scopes = {info.name: info.scope for info in registry.list()}
    for name in ("run_code", "open_session", "close_session"):
        assert scopes.pop(name) == "execute"
    for name in ("list_collections", "search_knowledge"):
        assert scopes.pop(name) == "knowledge:read"
    assert scopes.pop("remember") == "knowledge:write"
    assert set(scopes.values()) == {None}

    @tool(scope="knowledge:write")
    def forget(document_id: str) -> None:
        """Forget a document.

        Args:
            document_id: Which one.
        """

    assert registry.register(forget).scope == "knowledge:write"
    assert registry.register(forget, name="forget_too", scope="execute").scope == "execute"


def test_listings_and_exports_show_only_the_tools_the_gate_allows(registry: ToolRegistry) -> None:
    reads = {"list_collections", "search_knowledge"}
    scoped = {"run_code", "open_session", "close_session", "remember", *reads}
    everything = {info.name for info in registry.list()}
    assert scoped <= everything  # no gate, not gated: a local caller sees every tool

    def shown(gate: ToolGate | None, gated: ToolRegistry = registry) -> list[set[str]]:
        return [
            {info.name for info in gated.list(gate=gate)},
            {entry["function"]["name"] for entry in gated.to_openai(gate=gate)},
            {entry["name"] for entry in gated.to_openai(api="responses", gate=gate)},
            {entry["name"] for entry in gated.to_anthropic(gate=gate)},
            {entry["name"] for entry in gated.to_mcp(gate=gate)},
        ]

    assert shown(CountingGate()) == [everything - scoped] * 5
    assert shown(CountingGate("execute")) == [everything - reads - {"remember"}] * 5
    assert shown(CountingGate("execute", "knowledge:read")) == [everything - {"remember"}] * 5
    assert shown(CountingGate("knowledge:write")) == [(everything - scoped) | {"remember"}] * 5
    assert shown(CountingGate("execute", "knowledge:read", "knowledge:write")) == [everything] * 5
    gated = ToolRegistry(gated=True)
    register_builtins(gated, executor=_nothing, knowledge=_nothing)
    assert shown(None, gated) == [everything - scoped] * 5


async def test_a_call_without_the_scope_is_refused_before_it_validates_or_runs() -> None:
    runs: list[int] = []
    registry = ToolRegistry()

    @registry.tool(scope="execute", pure=True)
    async def launch(n: int) -> int:
        """Launch something.

        Args:
            n: How many.
        """
        runs.append(n)
        return n

    allowed, refused = CountingGate("execute"), CountingGate("tools")
    assert (await registry.acall("launch", {"n": 1}, gate=allowed)).value == 1
    with pytest.raises(ToolScopeMissing) as caught:
        await registry.acall("launch", {"n": 1}, gate=refused)  # cached, yet refused
    assert caught.value.status == 403
    assert caught.value.details == {"tool": "launch", "scope": "execute"}
    with pytest.raises(ToolScopeMissing):
        await registry.acall("launch", {"n": "not a number"}, gate=refused)
    [result] = await registry.acall_batch([{"tool": "launch", "arguments": {"n": 2}}], gate=refused)
    assert result.error is not None
    assert result.error.code == "scope_missing"
    assert runs == [1]
    assert allowed.admitted == ["execute"]  # the cache hit ran nothing, so admitted nothing


async def test_every_scoped_call_of_a_batch_runs_inside_its_admission() -> None:
    registry = ToolRegistry()
    gate = CountingGate("execute", limit=3)
    seen: list[int] = []

    @registry.tool(scope="execute")
    async def work(n: int) -> int:
        """Work a while.

        Args:
            n: Which call.
        """
        seen.append(gate.running)  # admitted while it runs
        for _ in range(3):
            await asyncio.sleep(0)  # yield to the other calls of the batch
        return n

    calls = [{"tool": "work", "arguments": {"n": n}} for n in range(3)]
    calls.append({"tool": "add", "arguments": {"a": 1, "b": 2}})
    registry.register(_add, name="add")
    results = await registry.acall_batch(calls, gate=gate)
    assert [r.ok for r in results] == [True] * 4
    assert gate.admitted == ["execute"] * 3  # `add` declares no scope: it is never admitted
    assert all(1 <= running <= 3 for running in seen)
    assert gate.running == 0
    over = await registry.acall_batch(
        [{"tool": "work", "arguments": {"n": n}} for n in range(5)], gate=gate
    )
    codes = [r.error.code if r.error else "ok" for r in over]
    assert codes.count("ok") == 3  # the gate's own limit: the rest are refused, one by one
    assert codes.count("rate_limited") == 2


def _add(a: float, b: float) -> float:
    """Add.

    Args:
        a: One.
        b: Two.
    """
    return a + b


async def test_a_refused_admission_raises_for_one_call_and_is_a_result_in_a_batch() -> None:
    registry = ToolRegistry()
    registry.register(_add, name="add_scoped", scope="execute")
    full = CountingGate("execute", full=True)
    with pytest.raises(RateLimited):
        await registry.acall("add_scoped", {"a": 1, "b": 2}, gate=full)
    [result] = await registry.acall_batch(
        [{"tool": "add_scoped", "arguments": {"a": 1, "b": 2}}], gate=full
    )
    assert result.error is not None
    assert (result.error.code, result.error.details) == ("rate_limited", {"retry_after_s": 2.0})


async def test_a_gated_registry_calls_scoped_tools_only_through_a_gate() -> None:
    registry = ToolRegistry(gated=True)
    registry.register(_add, name="add_scoped", scope="execute")
    registry.register(_add, name="add")
    with pytest.raises(ToolScopeMissing):
        registry.call("add_scoped", {"a": 1, "b": 2})
    with pytest.raises(ToolScopeMissing):
        await registry.acall("add_scoped", {"a": 1, "b": 2})
    assert registry.call("add", {"a": 1, "b": 2}).value == 3
    allowed = await registry.acall("add_scoped", {"a": 1, "b": 2}, gate=CountingGate("execute"))
    assert allowed.value == 3
