from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from companion.errors import InvalidInput
from companion.monitoring import Monitor, Sampler
from tests._clock import FakeClock


class FakeProcess:
    """Stands in for psutil.Process: fixed readings, counts calls."""

    def __init__(self) -> None:
        self.cpu_calls: list[object] = []

    @contextlib.contextmanager
    def oneshot(self) -> Iterator[None]:
        yield

    def memory_info(self) -> SimpleNamespace:
        return SimpleNamespace(rss=200 * 2**20)

    def cpu_percent(self, interval: object = None) -> float:
        self.cpu_calls.append(interval)
        return 42.0

    def num_threads(self) -> int:
        return 7

    def num_fds(self) -> int:
        return 19


def test_sample_once_records_process_gauges_and_evaluates() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.set_threshold("companion_process_cpu_percent", 40, "warning")
    process = FakeProcess()
    sampler = Sampler(monitor, process=process)  # type: ignore[arg-type]
    sampler.sample_once(loop_lag_s=0.003)
    assert monitor.memory.labels().value == 200 * 2**20
    assert monitor.cpu.labels().value == 42.0
    assert monitor.threads.labels().value == 7
    assert monitor.open_fds.labels().value == 19
    assert monitor.loop_lag.labels().value == 0.003
    assert len(monitor.active_alerts()) == 1
    assert set(process.cpu_calls) == {None}  # never the blocking form


def test_real_process_sample() -> None:
    monitor = Monitor()
    Sampler(monitor).sample_once()
    assert monitor.memory.labels().value > 1e6
    assert monitor.threads.labels().value >= 1


async def test_start_and_stop_run_the_loop_without_waiting() -> None:
    sleeps: list[float] = []
    ticked = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) >= 3:
            ticked.set()
        await asyncio.sleep(0)

    monitor = Monitor()
    sampler = Sampler(monitor, interval_s=5, process=FakeProcess(), sleep=fake_sleep)  # type: ignore[arg-type]
    async with sampler:
        assert sampler.running
        await ticked.wait()
    assert not sampler.running
    assert sleeps[:3] == [5.0, 5.0, 5.0]
    assert monitor.cpu.labels().value == 42.0


def test_interval_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="interval_s"):
        Sampler(Monitor(), interval_s=0)
