from __future__ import annotations

import json

import pytest

from companion.errors import InvalidInput
from companion.profiling import Profiler, Trace


def busy_work() -> int:
    return sum(i * i for i in range(300_000))


def test_trace_captures_a_call_tree() -> None:
    with Profiler().trace(interval_s=0.0005) as trace:
        busy_work()
    assert trace.duration_s > 0
    assert "busy_work" in trace.to_text()
    assert trace.to_html().lstrip().lower().startswith("<!doctype html")
    speedscope = json.loads(trace.to_speedscope())
    assert "speedscope" in speedscope["$schema"]
    frames = [frame["name"] for frame in speedscope["shared"]["frames"]]
    assert "busy_work" in frames


async def test_trace_in_async_code() -> None:
    async with Trace() as trace:
        busy_work()
    assert "busy_work" in trace.to_text()


def test_reading_before_the_block_ends_is_an_error() -> None:
    trace = Trace()
    with pytest.raises(InvalidInput, match="not finished"):
        trace.to_html()


@pytest.mark.parametrize("interval_s", [0, -1, 2])
def test_interval_is_validated(interval_s: float) -> None:
    with pytest.raises(InvalidInput, match="interval_s"):
        Trace(interval_s)
