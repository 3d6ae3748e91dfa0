"""Streamed runs through the client: every event, `done` last, and a stream left early ends its
run, on a real loopback server with one sandbox and one run in flight per key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import aclosing

import pytest
from companion_client import AsyncClient, Client, StreamEvent
from fastapi import FastAPI

from companion.api import create_app
from companion.config import load_settings
from tests._services import free_port
from tests.client._service import uvicorn_on

pytestmark = pytest.mark.sandbox

ENDLESS = "import itertools\nfor i in itertools.count():\n    print(i, flush=True)"
LONG = {"wall_time_ms": 30_000, "cpu_time_ms": 30_000}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One zygote and one run in flight per key: a run left running would hold both."""
    settings = load_settings(
        execution_pool_size=1,
        execute_max_concurrent_per_key=1,
        data_dir=tmp_path_factory.mktemp("streaming"),
    )
    app: FastAPI = create_app(settings)
    with uvicorn_on(app, free_port()) as url:
        _, token = app.state.companion.keys.create("default", ["execute"])
        yield url, str(token)


def _kinds(events: list[StreamEvent]) -> list[str]:
    return [event.kind for event in events]


def test_a_stream_left_early_ends_its_run(served: tuple[str, str]) -> None:
    url, key = served
    with Client(url, key) as client:
        events = client.run_stream(ENDLESS, limits=LONG)
        first = next(events)
        assert first.kind == "stdout"
        assert first.text.startswith("0\n")
        events.close()  # hang up: the service stops the run and frees its slot
        # The slot frees a moment later; until then the service answers 429 and the client
        # waits as told (its retries), long before the endless run's 30 s.
        after = client.run("print('next')", limits={"wall_time_ms": 3000})
    assert after.stdout == "next\n"


async def test_the_async_stream_in_order_and_left_early(served: tuple[str, str]) -> None:
    url, key = served
    async with AsyncClient(url, key) as client:
        code = "import sys\nprint('a', flush=True)\nprint('b', file=sys.stderr, flush=True)\n'c'"
        events = [event async for event in client.run_stream(code)]
        # stdout, stderr and results come through separate channels of the sandbox, each in
        # its own order (docs/execution.md): only `done` has a place, the last.
        assert _kinds(events)[-1] == "done"
        assert sorted(_kinds(events)) == ["done", "result", "stderr", "stdout"]
        assert [e.result.data for e in events if e.result is not None] == ["'c'"]
        done = events[-1].execution
        assert done is not None
        assert (done.stdout, done.stderr, done.value) == ("a\n", "b\n", "'c'")

        async with aclosing(client.run_stream(ENDLESS, limits=LONG)) as stream:
            async for event in stream:
                assert event.kind == "stdout"
                break
        after = await client.run("print('after')", limits={"wall_time_ms": 3000})
        assert after.stdout == "after\n"
