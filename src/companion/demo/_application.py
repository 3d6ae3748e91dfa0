"""The application layer in the demo: code in both languages, a tool batch, a knowledge search."""

from __future__ import annotations

import asyncio
import importlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from companion.config import load_settings
from companion.demo._section import Section
from companion.errors import CompanionError
from companion.execution import ExecutionRequest, Executor
from companion.tools import ToolCall, ToolRegistry, register_builtins

__all__ = ["execution", "knowledge", "tools"]

_FACTORIAL = {
    "python": "import math\nprint(math.factorial(10))",
    "javascript": "let f = 1; for (let i = 2; i <= 10; i++) f *= i; console.log(f)",
}


async def _timed_runs(executor: Executor, language: str, runs: int) -> tuple[float, str]:
    request = ExecutionRequest(language=language, code=_FACTORIAL[language])
    result = await executor.run(request)  # warm-up: the first run of a zygote
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        result = await executor.run(request)
        samples.append(time.perf_counter_ns() - started)
    return float(statistics.median(samples)), f"{result.status}: {result.stdout.strip()}"


def execution() -> Section:
    """factorial(10) in sandboxed Python and JavaScript (warm pools), as in the seed's table."""
    section = Section("5. Code execution in both languages")

    async def run() -> None:
        executor = Executor(load_settings(execution_pool_size=1))
        try:
            await executor.start()
            for language in ("python", "javascript"):
                median, outcome = await _timed_runs(executor, language, runs=10)
                section.say(
                    f"{language:<10} factorial(10) → {outcome}  median {median / 1e6:.2f} ms"
                )
                section.figures[f"{language}_median_ns"] = median
        finally:
            await executor.close()

    try:
        asyncio.run(run())
    except CompanionError as exc:
        section.skipped = f"no sandbox on this host: {exc.message}"
    return section


def tools() -> Section:
    """A batch of ten built-in tools in parallel, and one tool uncached vs cached."""
    section = Section("6. Tool batch")
    registry = ToolRegistry()
    register_builtins(registry)
    calls = [
        ToolCall("add", {"a": 5, "b": 3}), ToolCall("multiply", {"a": 6, "b": 7}),
        ToolCall("sqrt", {"x": 81}), ToolCall("power", {"base": 2, "exponent": 10}),
        ToolCall("uppercase", {"text": "companion"}), ToolCall("reverse_text", {"text": "abc"}),
        ToolCall("count_words", {"text": "one two three"}), ToolCall("list_sum", {"numbers": [1, 2, 3]}),
        ToolCall("list_max", {"numbers": [4, 9, 2]}), ToolCall("to_json", {"value": {"a": 1}}),
    ]  # fmt: skip

    async def batch() -> tuple[float, float, list[Any]]:
        started = time.perf_counter_ns()
        await registry.acall_batch(calls)  # computed (the built-ins are pure: then cached)
        first = time.perf_counter_ns()
        results = await registry.acall_batch(calls)
        return float(first - started), float(time.perf_counter_ns() - first), results

    try:
        first_ns, elapsed_ns, results = asyncio.run(batch())
        ok = sum(1 for r in results if r.ok)
        section.say(
            f"10 tools in parallel: {first_ns / 1e6:.3f} ms computed (first batch), "
            f"{elapsed_ns / 1e6:.3f} ms repeated from the cache; {ok}/10 ok"
        )
        section.say("results: " + ", ".join(f"{r.tool}={r.value}" for r in results[:5]) + ", …")
        uncached = _median_call_ns(registry, {"a": 5, "b": 3}, fresh=True)
        cached = _median_call_ns(registry, {"a": 5, "b": 3}, fresh=False)
        section.say(
            f"add(a, b): {uncached / 1e3:.2f} µs validated and computed (new arguments each call), "
            f"{cached / 1e3:.2f} µs from the cache"
        )
        section.figures = {
            "batch_first_ns": first_ns,
            "batch_cached_ns": elapsed_ns,
            "ok": ok,
            "add_ns": uncached,
            "add_cached_ns": cached,
        }
    finally:
        registry.close()
    return section


def _median_call_ns(registry: ToolRegistry, arguments: dict[str, Any], *, fresh: bool) -> float:
    samples = []
    for i in range(300):
        args = (
            {**arguments, "a": arguments["a"] + i} if fresh else arguments
        )  # fresh: always a miss
        started = time.perf_counter_ns()
        registry.call("add", args)
        samples.append(time.perf_counter_ns() - started)
    return float(statistics.median(samples))


def knowledge() -> Section:
    """A BM25 search over a few documents, when the knowledge subsystem is installed."""
    section = Section("7. Knowledge search")
    module = importlib.import_module("companion.knowledge")
    if not hasattr(module, "build_knowledge_base"):
        section.skipped = "companion.knowledge is not part of this build yet"
        return section
    documents = [
        "The tiered cache promotes an L2 hit into L1 and demotes L1 evictions to L2.",
        "Sandboxed Python runs in a warm zygote: a fork, not an interpreter start.",
        "Alerts fire once when a threshold is crossed and resolve when the value goes back.",
    ]

    async def run() -> Any:
        with tempfile.TemporaryDirectory() as data_dir:
            base = module.build_knowledge_base(load_settings(data_dir=Path(data_dir)))
            await base.start()
            try:
                await base.create_collection("demo", "notes")
                await base.upsert(
                    "demo", "notes", [module.DocumentInput(text=t) for t in documents]
                )
                await base.search("demo", "notes", "cache promotion", mode="bm25", k=2)
                return await base.search("demo", "notes", "cache promotion", mode="bm25", k=2)
            finally:
                await base.close()

    try:
        result = asyncio.run(run())
    except (CompanionError, TypeError, AttributeError) as exc:
        section.skipped = f"knowledge search unavailable: {exc}"
        return section
    for hit in result.results:
        section.say(f"{hit.score:6.2f}  {hit.text[:70]}")
    section.say(f"took {result.took_ms:.2f} ms")
    section.figures = {"took_ms": result.took_ms, "hits": len(result.results)}
    return section
