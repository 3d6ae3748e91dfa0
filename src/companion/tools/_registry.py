"""`ToolRegistry`: register functions as tools, find them, call them (one, or a batch in parallel)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import replace
from functools import partial
from typing import Any, Literal

from pydantic import ValidationError

from companion.cache import MISSING, TieredCache
from companion.config import setting_default
from companion.errors import CompanionError, InvalidInput
from companion.monitoring import Monitor
from companion.telemetry import NO_TELEMETRY, Telemetry, record_tool, tool_span
from companion.tools import _export
from companion.tools._calls import (
    cache_key,
    encode_arguments,
    failure,
    timeout_failure,
    validate,
    validated_arguments,
)
from companion.tools._context import CALLER_TENANT
from companion.tools._errors import ToolAlreadyRegistered, ToolNotFound, ToolScopeMissing
from companion.tools._gate import ToolGate
from companion.tools._models import ToolCall, ToolErrorInfo, ToolInfo, ToolResult
from companion.tools._tool import ToolOptions, ToolRecord, marked_options

__all__ = ["ToolRegistry"]

_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
Clock = Callable[[], float]
Arguments = Mapping[str, Any] | str | bytes | None


class ToolRegistry:
    """Tools by name, with strict validation, caching of pure tools, metrics and exports.

    A tool that acts through another capability declares its `scope` (`run_code`: "execute").
    Calls and listings given a `ToolGate` show and run such a tool only when the gate allows its
    scope, and each of its calls runs inside `gate.admit(scope)` (the capability's limits).
    `gated=True` (the service) refuses and hides scoped tools when no gate is given; otherwise a
    call without a gate acts for a local, trusted caller (a script, the CLI).
    """

    def __init__(
        self,
        *,
        cache: TieredCache | None = None,
        monitor: Monitor | None = None,
        cache_ttl_s: float = setting_default("tools_cache_ttl_s"),
        default_timeout_s: float | None = None,
        max_threads: int = setting_default("tools_pool_size"),
        max_concurrency: int = setting_default("tools_max_concurrent_calls"),
        disabled: Iterable[str] = (),
        clock: Clock = time.perf_counter,
        gated: bool = False,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        if max_threads < 1 or max_concurrency < 1:
            raise InvalidInput("max_threads and max_concurrency must be at least 1")
        self.cache = cache if cache is not None else TieredCache()
        self.monitor = monitor if monitor is not None else Monitor()
        self.cache_ttl_s = cache_ttl_s
        self.default_timeout_s = default_timeout_s
        self.max_concurrency = max_concurrency
        self._max_threads = max_threads
        self._clock = clock
        self.gated = gated
        # Fixed at construction; the built-ins trace their inner work (searches) through it.
        self.telemetry = telemetry
        if telemetry.enabled:
            # Chosen once, here: with tracing off `acall` is the plain method and a call pays no
            # check at all (a wrapper's frame alone measured 10-25 % of a cached call).
            self.acall = self._traced_acall  # type: ignore[method-assign]
        self._lock = threading.Lock()
        self._records: dict[str, ToolRecord] = {}
        self._disabled: set[str] = set(disabled)
        # Only enabled tools: the hot path does one dict lookup.
        self._active: dict[str, ToolRecord] = {}
        self._tenants: set[str] = set()
        self._executor: ThreadPoolExecutor | None = None

    # -- registration -------------------------------------------------------------------------

    def register(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        *,
        description: str | None = None,
        category: str | None = None,
        pure: bool | None = None,
        timeout_s: float | None = None,
        read_only: bool | None = None,
        idempotent: bool | None = None,
        inline: bool | None = None,
        scope: str | None = None,
    ) -> ToolInfo:
        """Register `fn` (sync or async); options given here win over those of `@tool`.

        `inline=True` runs a sync tool on the event loop instead of the thread pool: only for tools
        that compute for microseconds and never block (the built-ins do). `scope` names the
        capability the tool acts through (see the class docstring).
        """
        given = ToolOptions(
            name, description, category, pure, timeout_s, read_only, idempotent, inline, scope
        )
        record = ToolRecord(fn, given.over(marked_options(fn)), self.monitor)
        # The registry's default applies to tools without a tighter timeout of their own.
        record.timeout_s = _limit(self.default_timeout_s, record.timeout_s)
        record.direct = not (record.pure or record.is_async) and (
            record.timeout_s is None and record.scope is None
        )
        with self._lock:
            if record.name in self._records:
                raise ToolAlreadyRegistered(f"a tool named {record.name!r} is already registered")
            self._records[record.name] = record
            self._refresh()
        return self.get(record.name)

    def tool(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Decorator form of `register`: `@registry.tool` or `@registry.tool(pure=True)`."""

        def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
            self.register(target, **options)
            return target

        return decorate(fn) if fn is not None else decorate

    def unregister(self, name: str) -> None:
        """Remove a tool; `ToolNotFound` if there is none of that name."""
        with self._lock:
            if self._records.pop(name, None) is None:
                raise ToolNotFound(f"no tool named {name!r}")
            self._refresh()

    # -- discovery ----------------------------------------------------------------------------

    def get(self, name: str) -> ToolInfo:
        """The tool called `name` (disabled ones too, marked so); `ToolNotFound` if none."""
        record = self._records.get(name)
        if record is None:
            raise ToolNotFound(f"no tool named {name!r}")
        return replace(record.info, enabled=name in self._active)

    def list(
        self,
        category: str | None = None,
        *,
        include_disabled: bool = False,
        gate: ToolGate | None = None,
    ) -> builtins.list[ToolInfo]:
        """Tools sorted by category then name, optionally of one category; those `gate` allows."""
        names = self._records if include_disabled else self._active
        infos = [self.get(name) for name in builtins.list(names)]
        infos = [
            info
            for info in infos
            if (category is None or info.category == category) and self.may_call(info, gate)
        ]
        return sorted(infos, key=lambda info: (info.category, info.name))

    def may_call(self, info: ToolInfo, gate: ToolGate | None) -> bool:
        """Whether a caller with `gate` may call the tool (and so see it listed)."""
        if info.scope is None:
            return True
        return gate.allows(info.scope) if gate is not None else not self.gated

    def categories(self) -> dict[str, int]:
        """Each category of the enabled tools, with how many tools it has."""
        counts: dict[str, int] = {}
        for info in self.list():
            counts[info.category] = counts.get(info.category, 0) + 1
        return counts

    def search(self, text: str) -> builtins.list[ToolInfo]:
        """Enabled tools whose name, category or description contains every word of `text`."""
        words = text.lower().split()
        return [
            info
            for info in self.list()
            if all(
                word in f"{info.name} {info.category} {info.description}".lower() for word in words
            )
        ]

    def disable(self, name_or_category: str) -> None:
        """Hide a tool, or every tool of a category, from listings and calls."""
        with self._lock:
            self._disabled.add(name_or_category)
            self._refresh()

    def enable(self, name_or_category: str) -> None:
        """Undo `disable` for a tool or category."""
        with self._lock:
            self._disabled.discard(name_or_category)
            self._refresh()

    def _refresh(self) -> None:
        self._active = {
            name: record
            for name, record in self._records.items()
            if name not in self._disabled and record.info.category not in self._disabled
        }

    # -- exports ------------------------------------------------------------------------------

    def to_openai(
        self,
        api: Literal["chat", "responses"] = "chat",
        category: str | None = None,
        *,
        gate: ToolGate | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """OpenAI function tools in strict mode, for Chat Completions or the Responses API."""
        return [_export.openai_tool(info, api) for info in self.list(category, gate=gate)]

    def to_anthropic(
        self, category: str | None = None, *, gate: ToolGate | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Anthropic Messages API tool definitions."""
        return [_export.anthropic_tool(info) for info in self.list(category, gate=gate)]

    def to_mcp(
        self, category: str | None = None, *, gate: ToolGate | None = None
    ) -> builtins.list[dict[str, Any]]:
        """MCP `tools/list` entries (with annotations and output schemas)."""
        return [_export.mcp_tool(info) for info in self.list(category, gate=gate)]

    # -- calls --------------------------------------------------------------------------------

    def call(
        self,
        name: str,
        arguments: Arguments = None,
        *,
        tenant: str = "default",
        timeout_s: float | None = None,
    ) -> ToolResult:
        """Call a tool from sync code; sync tools without a timeout run inline on this thread.

        Raises `ToolNotFound` or `ToolArgumentsInvalid` (and `ToolScopeMissing` for a scoped tool
        of a gated registry: admission needs `acall`); a tool's own failure or timeout is a result
        with `ok=False`.
        """
        start = self._clock()
        record = self._active.get(name)
        # The common case in one frame (each nested call costs ~60 ns; pydantic's own
        # `validate_call` is the peer to beat): a sync, impure, unscoped tool without a timeout,
        # called for the tenant already in the context (the registry set it, so it was checked).
        if (
            record is not None
            and record.direct
            and timeout_s is None
            and CALLER_TENANT.get() == tenant
        ):
            if type(arguments) is dict and not record.null_means_default:
                try:
                    kwargs = record.validate_python(arguments)
                except ValidationError:  # the full rules decide (JSON form, error pointers)
                    kwargs = validated_arguments(record, arguments)
            else:
                kwargs = validated_arguments(record, arguments)
            try:
                value = record.fn(**kwargs)
            except Exception as exc:  # any tool failure becomes a result
                return self._failed(record, failure(name, exc), start)
            elapsed_s = self._clock() - start
            record.duration.observe(elapsed_s)
            record.calls.inc()
            return ToolResult(name, True, value, None, elapsed_s * 1000)
        prepared = self._prepare(name, arguments, tenant, start, None)
        if type(prepared) is ToolResult:
            return prepared
        record, kwargs, key = prepared  # type: ignore[misc]
        limit_s = record.timeout_s if timeout_s is None else _limit(record.timeout_s, timeout_s)
        if CALLER_TENANT.get() == tenant:  # usually: setting and resetting it costs ~100 ns
            return self._finish_sync(record, kwargs, key, limit_s, start)
        token = CALLER_TENANT.set(tenant)
        try:
            return self._finish_sync(record, kwargs, key, limit_s, start)
        finally:
            CALLER_TENANT.reset(token)

    def _finish_sync(
        self,
        record: ToolRecord,
        kwargs: dict[str, Any],
        key: str | None,
        limit_s: float | None,
        start: float,
    ) -> ToolResult:
        name = record.name
        if record.is_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self._finish_async(record, kwargs, key, limit_s, start))
            raise InvalidInput(f"{name} is an async tool: use `await registry.acall(...)` here")
        try:
            if limit_s is None:
                value = record.fn(**kwargs)
            else:
                future = self._pool().submit(copy_context().run, partial(record.fn, **kwargs))
                try:
                    value = future.result(limit_s)
                except TimeoutError:
                    if future.done():
                        raise
                    future.cancel()
                    return self._failed(record, timeout_failure(name, limit_s), start)
        except Exception as exc:  # any tool failure becomes a result
            return self._failed(record, failure(name, exc), start)
        return self._succeeded(record, key, value, start)

    async def acall(
        self,
        name: str,
        arguments: Arguments = None,
        *,
        tenant: str = "default",
        timeout_s: float | None = None,
        gate: ToolGate | None = None,
    ) -> ToolResult:
        """Call a tool from async code: async tools on this loop, sync ones in the thread pool.

        A scoped tool needs `gate` to allow its scope (else `ToolScopeMissing`) and runs inside
        `gate.admit(scope)`, whose refusal (e.g. `RateLimited`) is raised. The call's timeout
        covers the run, not the wait for admission. With tracing on, each call is a span
        (`execute_tool {name}`: cached or not, and its outcome).
        """
        start = self._clock()
        prepared = self._prepare(name, arguments, tenant, start, gate)
        if type(prepared) is ToolResult:
            return prepared
        record, kwargs, key = prepared  # type: ignore[misc]
        limit_s = _limit(record.timeout_s, timeout_s)
        token = CALLER_TENANT.set(tenant)
        try:
            if record.scope is None or gate is None:
                return await self._finish_async(record, kwargs, key, limit_s, start)
            async with gate.admit(record.scope):
                return await self._finish_async(record, kwargs, key, limit_s, start)
        finally:
            CALLER_TENANT.reset(token)

    async def _traced_acall(
        self,
        name: str,
        arguments: Arguments = None,
        *,
        tenant: str = "default",
        timeout_s: float | None = None,
        gate: ToolGate | None = None,
    ) -> ToolResult:
        """`acall` inside its span (installed as `acall` when tracing is on)."""
        # A name the registry does not know never becomes a span's name.
        known = name if name in self._records else None
        with tool_span(self.telemetry, known) as span:
            result = await type(self).acall(
                self, name, arguments, tenant=tenant, timeout_s=timeout_s, gate=gate
            )
            record_tool(span, result)
            return result

    async def acall_batch(
        self,
        calls: Sequence[ToolCall | Mapping[str, Any]],
        *,
        tenant: str = "default",
        max_concurrency: int | None = None,
        timeout_s: float | None = None,
        gate: ToolGate | None = None,
    ) -> builtins.list[ToolResult]:
        """Run calls in parallel (at most `max_concurrency` at once); results keep their order.

        Every call gets its own result: an unknown tool, bad arguments, a missing scope, a refused
        admission, a failure or a timeout in one call never affects the others.
        """
        batch = [_as_call(call) for call in calls]
        limit = max_concurrency or self.max_concurrency
        semaphore = asyncio.Semaphore(limit) if len(batch) > limit else None

        async def one(call: ToolCall) -> ToolResult:
            start = self._clock()
            try:
                if semaphore is None:
                    result = await self.acall(
                        call.tool, call.arguments, tenant=tenant, timeout_s=timeout_s, gate=gate
                    )
                else:
                    async with semaphore:
                        result = await self.acall(
                            call.tool,
                            call.arguments,
                            tenant=tenant,
                            timeout_s=timeout_s,
                            gate=gate,
                        )
            except CompanionError as exc:
                elapsed_ms = (self._clock() - start) * 1000
                result = ToolResult(call.tool, False, None, failure(call.tool, exc), elapsed_ms)
            return result if call.id is None else result.with_id(call.id)

        return await asyncio.gather(*(one(call) for call in batch))

    def call_batch(
        self,
        calls: Sequence[ToolCall | Mapping[str, Any]],
        *,
        tenant: str = "default",
        max_concurrency: int | None = None,
        timeout_s: float | None = None,
    ) -> builtins.list[ToolResult]:
        """`acall_batch` from sync code (outside a running event loop)."""
        return asyncio.run(
            self.acall_batch(
                calls, tenant=tenant, max_concurrency=max_concurrency, timeout_s=timeout_s
            )
        )

    def close(self) -> None:
        """Stop the thread pool (waiting for running sync tools)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    # -- the steps of a call ------------------------------------------------------------------

    def _prepare(
        self, name: str, arguments: Arguments, tenant: str, start: float, gate: ToolGate | None
    ) -> ToolResult | tuple[ToolRecord, dict[str, Any], str | None]:
        record = self._active.get(name)
        if record is None:
            raise self._not_found(name)
        # Before the arguments and the cache: a caller without the scope learns nothing more.
        if record.scope is not None and not self.may_call(record.info, gate):
            raise ToolScopeMissing(name, record.scope)
        if tenant not in self._tenants:
            self._check_tenant(tenant)
        if not record.pure:
            return record, validated_arguments(record, arguments), None
        raw = encode_arguments(name, arguments)
        canonical = record.memo.get(raw)
        if canonical is not None:
            key = f"t:{tenant}:tools:{name}:{canonical}"
            value = self.cache.get(key, MISSING)
            if value is not MISSING:
                record.calls.inc()
                record.cache_hits.inc()
                return ToolResult(name, True, value, None, (self._clock() - start) * 1000, True)
            return record, validate(record, raw), key
        kwargs = validate(record, raw)
        key = f"t:{tenant}:tools:{name}:{cache_key(record, raw, kwargs)}"
        value = self.cache.get(key, MISSING)
        if value is not MISSING:
            record.calls.inc()
            record.cache_hits.inc()
            return ToolResult(name, True, value, None, (self._clock() - start) * 1000, True)
        return record, kwargs, key

    async def _finish_async(
        self,
        record: ToolRecord,
        kwargs: dict[str, Any],
        key: str | None,
        limit_s: float | None,
        start: float,
    ) -> ToolResult:
        try:
            async with asyncio.timeout(limit_s) as deadline:
                if record.is_async:
                    value = await record.fn(**kwargs)
                elif record.inline:
                    value = record.fn(**kwargs)
                else:
                    loop = asyncio.get_running_loop()
                    call = partial(copy_context().run, partial(record.fn, **kwargs))
                    value = await loop.run_in_executor(self._pool(), call)
        except TimeoutError as exc:
            if limit_s is not None and deadline.expired():
                return self._failed(record, timeout_failure(record.name, limit_s), start)
            return self._failed(record, failure(record.name, exc), start)
        except Exception as exc:  # any tool failure becomes a result
            return self._failed(record, failure(record.name, exc), start)
        return self._succeeded(record, key, value, start)

    def _succeeded(
        self, record: ToolRecord, key: str | None, value: Any, start: float
    ) -> ToolResult:
        if key is not None:
            value = _export.jsonable(value)
            # A cache that cannot store never fails the call.
            with contextlib.suppress(CompanionError):
                self.cache.set(key, value, ttl_s=self.cache_ttl_s)
        elapsed_s = self._clock() - start
        record.duration.observe(elapsed_s)
        record.calls.inc()
        return ToolResult(record.name, True, value, None, elapsed_s * 1000)

    def _failed(self, record: ToolRecord, error: ToolErrorInfo, start: float) -> ToolResult:
        elapsed_s = self._clock() - start
        record.calls.inc()
        record.errors.labels(record.name, error.code).inc()
        record.duration.observe(elapsed_s)
        return ToolResult(record.name, False, None, error, elapsed_s * 1000)

    def _not_found(self, name: str) -> ToolNotFound:
        if name in self._records:
            return ToolNotFound(f"tool {name!r} is disabled in this deployment")
        return ToolNotFound(f"no tool named {name!r}")

    def _check_tenant(self, tenant: str) -> None:
        if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
            raise InvalidInput(f"tenant must match [A-Za-z0-9_.-]{{1,64}}, got {tenant!r}")
        if len(self._tenants) >= 10_000:
            self._tenants.clear()
        self._tenants.add(tenant)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._max_threads, thread_name_prefix="companion-tool"
                    )
        return self._executor


def _limit(tool_s: float | None, call_s: float | None) -> float | None:
    """The tighter of the tool's timeout and the call's: a call may lower a limit, never raise it."""
    if call_s is None:
        return tool_s
    if call_s <= 0:
        raise InvalidInput(f"timeout_s must be > 0, got {call_s!r}")
    return call_s if tool_s is None else min(tool_s, call_s)


def _as_call(call: ToolCall | Mapping[str, Any]) -> ToolCall:
    if isinstance(call, ToolCall):
        return call
    try:
        return ToolCall(call["tool"], call.get("arguments") or {}, call.get("id"))
    except (KeyError, TypeError, AttributeError):
        raise InvalidInput(f"a batch call needs a `tool` and `arguments`, got {call!r}") from None
