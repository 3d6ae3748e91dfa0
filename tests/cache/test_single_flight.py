from __future__ import annotations

import asyncio
import threading
import time

import pytest

from companion.cache._single_flight import SingleFlight


def _wait_until(condition: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)  # real-time: waiting on other threads


def test_fifty_threads_run_once_and_share_the_result() -> None:
    flights = SingleFlight()
    release = threading.Event()
    calls = []

    def compute() -> str:
        calls.append(1)
        release.wait(5)
        return "done"

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(flights.run("k", compute)))
        for _ in range(50)
    ]
    for thread in threads:
        thread.start()
    _wait_until(lambda: flights.waiting("k") == 49)
    release.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == ["done"] * 50
    assert flights.waiting("k") == 0


def test_an_exception_reaches_every_thread_waiter() -> None:
    flights = SingleFlight()
    release = threading.Event()
    errors: list[BaseException] = []

    def compute() -> str:
        release.wait(5)
        raise KeyError("boom")

    def call() -> None:
        try:
            flights.run("k", compute)
        except KeyError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    _wait_until(lambda: flights.waiting("k") == 9)
    release.set()
    for thread in threads:
        thread.join()
    assert len(errors) == 10
    assert flights.run("k", lambda: "again") == "again"


async def test_fifty_tasks_run_once() -> None:
    flights = SingleFlight()
    release = asyncio.Event()
    calls = []

    async def compute() -> int:
        calls.append(1)
        await release.wait()
        return 7

    tasks = [asyncio.create_task(flights.run_async("k", compute)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == [7] * 50
    assert len(calls) == 1


async def test_task_exception_reaches_all_and_cancelling_one_waiter_spares_the_rest() -> None:
    flights = SingleFlight()
    release = asyncio.Event()

    async def compute() -> int:
        await release.wait()
        raise ValueError("bad")

    tasks = [asyncio.create_task(flights.run_async("k", compute)) for _ in range(5)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, ValueError) for r in results[1:])
    with pytest.raises(ValueError, match="bad"):
        await flights.run_async("k", compute)
