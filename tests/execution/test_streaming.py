"""Output as it happens: `Executor.run(on_output=...)`, in both sandbox modes.

What streams must be exactly what the result holds, each stream in the order the run produced
it (stdout and stderr are two pipes: their pieces interleave as they are read), and a caller that
stops listening (cancels) must not leave the run behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from companion.config import load_settings
from companion.execution import ExecutionRequest, Executor, OutputEvent
from tests.execution.conftest import SANDBOX_MODES, sandbox_settings

pytestmark = pytest.mark.sandbox


@pytest.fixture(params=SANDBOX_MODES)
async def one_zygote(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    """One plain zygote: a run left behind would hold it, so the next run would wait."""
    executor = Executor(load_settings(**sandbox_settings(request.param, execution_pool_size=1)))
    await executor.start()
    yield executor
    await executor.close()


async def test_streamed_output_is_the_results_in_the_order_produced(one_zygote: Executor) -> None:
    code = (
        "import sys\n"
        "for i in range(200):\n"
        "    print('line', i)\n"
        "    if i % 50 == 0:\n"
        "        print('warn', i, file=sys.stderr)\n"
        "        display({'at': i})\n"
        "'last'"
    )
    events: list[OutputEvent] = []
    result = await one_zygote.run(
        ExecutionRequest(language="python", code=code), on_output=events.append
    )
    assert result.status == "ok", result
    streamed = {
        kind: "".join(e.text for e in events if e.kind == kind) for kind in ("stdout", "stderr")
    }
    assert streamed == {"stdout": result.stdout, "stderr": result.stderr}
    assert result.stdout.splitlines() == [f"line {i}" for i in range(200)]
    assert [e.result for e in events if e.kind == "result"] == result.results


async def test_a_printed_line_streams_while_the_run_goes_on(one_zygote: Executor) -> None:
    # Streamed runs print line-buffered: one line, then a run that never ends by itself. The line
    # reaching the listener is what lets this test end (the listener cancels the run).
    seen: list[OutputEvent] = []
    arrived = asyncio.Event()

    def listen(event: OutputEvent) -> None:
        seen.append(event)
        arrived.set()

    forever = ExecutionRequest(
        language="python",
        code="print('first line')\nwhile True:\n    pass",
        limits={"wall_time_ms": 20_000, "cpu_time_ms": 20_000},
    )
    run = asyncio.create_task(one_zygote.run(forever, on_output=listen))
    await arrived.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert [(e.kind, e.text) for e in seen] == [("stdout", "first line\n")]


async def test_a_multibyte_character_split_between_reads_streams_whole(
    one_zygote: Executor,
) -> None:
    code = "import sys\nfor _ in range(3000):\n    sys.stdout.write('é€😀')\n"
    events: list[OutputEvent] = []
    result = await one_zygote.run(
        ExecutionRequest(language="python", code=code), on_output=events.append
    )
    assert "".join(e.text for e in events if e.kind == "stdout") == "é€😀" * 3000 == result.stdout
    assert all("\ufffd" not in e.text for e in events)


async def test_javascript_output_streams_too(one_zygote: Executor) -> None:
    events: list[OutputEvent] = []
    result = await one_zygote.run(
        ExecutionRequest(language="javascript", code="console.log('a'); console.error('b'); 7"),
        on_output=events.append,
    )
    assert [(e.kind, e.text) for e in events if e.kind != "result"] == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
    ]
    assert [e.result.data for e in events if e.result] == ["7"] == [r.data for r in result.results]


async def test_a_listener_that_stops_listening_ends_the_run(one_zygote: Executor) -> None:
    first_output = asyncio.Event()
    endless = ExecutionRequest(
        language="python",
        code="import itertools\nfor i in itertools.count():\n    print(i)",
        limits={"wall_time_ms": 20_000, "cpu_time_ms": 20_000},
    )
    stats = one_zygote.pool_stats()
    assert stats is not None
    replaced = stats.replaced
    run = asyncio.create_task(one_zygote.run(endless, on_output=lambda _: first_output.set()))
    await first_output.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # The one zygote is free again: the endless child was killed, not left to its 20 s. Had it
    # been left, this run would wait for the zygote past its guard (its wall time + 5 s) and
    # raise ExecutorBusy.
    quick = await one_zygote.run(
        ExecutionRequest(language="python", code="print('free')", limits={"wall_time_ms": 2000})
    )
    assert quick.stdout == "free\n", quick
    after = one_zygote.pool_stats()
    assert after is not None
    assert after.replaced == replaced  # the zygote served on: only the run's child was killed


async def test_a_failing_listener_never_breaks_the_run(one_zygote: Executor) -> None:
    def broken(_: OutputEvent) -> None:
        raise RuntimeError("listener bug")

    result = await one_zygote.run(
        ExecutionRequest(language="python", code="print(1)\n2"), on_output=broken
    )
    assert (result.status, result.stdout) == ("ok", "1\n")


async def test_an_unfinished_character_at_the_end_streams_as_the_result_has_it(
    one_zygote: Executor,
) -> None:
    events: list[OutputEvent] = []
    code = "import sys\nsys.stdout.write('ok ')\nsys.stdout.flush()\nsys.stdout.buffer.write(b'\\xe2\\x82')"
    result = await one_zygote.run(
        ExecutionRequest(language="python", code=code), on_output=events.append
    )
    assert result.stdout == "ok \ufffd"
    assert "".join(e.text for e in events if e.kind == "stdout") == result.stdout
