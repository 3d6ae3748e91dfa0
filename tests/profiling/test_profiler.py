from __future__ import annotations

import itertools
import json
import statistics
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest

from companion.errors import InvalidInput
from companion.profiling import OVERFLOW_NAME, Profiler
from tests._clock import FakeClock


def test_sync_function_stats_with_a_fake_clock() -> None:
    clock = FakeClock(0.0)
    profiler = Profiler(clock=clock)
    durations = [0.001 * i for i in range(1, 101)]
    pending = iter(durations)

    @profiler.profile("work")
    def work() -> str:
        clock.advance(next(pending))
        return "done"

    for _ in durations:
        assert work() == "done"
    stats = profiler.stats("work")
    assert stats is not None
    assert stats.count == 100
    assert stats.errors == 0
    assert stats.total_s == pytest.approx(sum(durations))
    assert stats.min_s == pytest.approx(0.001)
    assert stats.max_s == pytest.approx(0.1)
    assert stats.avg_s == pytest.approx(statistics.fmean(durations))
    assert stats.stddev_s == pytest.approx(statistics.pstdev(durations))
    assert stats.p50_s == pytest.approx(0.050, rel=0.01)
    assert stats.p95_s == pytest.approx(0.095, rel=0.01)
    assert stats.p99_s == pytest.approx(0.099, rel=0.01)


def test_default_name_is_module_and_qualname() -> None:
    profiler = Profiler()

    @profiler.profile
    def plain() -> None:
        pass

    @profiler.profile()
    def called() -> None:
        pass

    plain()
    called()
    names = {s.name for s in profiler.all_stats()}
    assert names == {
        f"{__name__}.test_default_name_is_module_and_qualname.<locals>.plain",
        f"{__name__}.test_default_name_is_module_and_qualname.<locals>.called",
    }
    assert plain.__name__ == "plain"


def test_calls_that_raise_are_recorded_as_errors() -> None:
    clock = FakeClock()
    profiler = Profiler(clock=clock)

    @profiler.profile("flaky")
    def flaky(fail: bool) -> None:
        clock.advance(0.5)
        if fail:
            raise ValueError("bad")

    flaky(False)
    with pytest.raises(ValueError, match="bad"):
        flaky(True)
    stats = profiler.stats("flaky")
    assert stats is not None
    assert (stats.count, stats.errors, stats.total_s) == (2, 1, 1.0)


async def test_async_functions_and_generators() -> None:
    clock = FakeClock()
    profiler = Profiler(clock=clock)

    @profiler.profile("coro")
    async def coro() -> int:
        clock.advance(0.2)
        return 7

    @profiler.profile("gen")
    def gen() -> Iterator[int]:
        clock.advance(0.1)
        yield 1
        clock.advance(0.1)
        yield 2

    @profiler.profile("agen")
    async def agen() -> AsyncIterator[int]:
        clock.advance(0.3)
        yield 1

    @profiler.profile("afail")
    async def afail() -> None:
        raise RuntimeError("x")

    assert await coro() == 7
    assert list(gen()) == [1, 2]
    assert [item async for item in agen()] == [1]
    with pytest.raises(RuntimeError):
        await afail()
    by_name = {s.name: s for s in profiler.all_stats()}
    assert by_name["coro"].total_s == pytest.approx(0.2)
    assert by_name["gen"].total_s == pytest.approx(0.2)
    assert by_name["agen"].total_s == pytest.approx(0.3)
    assert by_name["afail"].errors == 1


def test_a_generator_closed_early_is_not_an_error() -> None:
    profiler = Profiler()

    @profiler.profile("gen")
    def numbers() -> Iterator[int]:
        yield from range(10)

    iterator = numbers()
    next(iterator)
    iterator.close()  # type: ignore[attr-defined]
    stats = profiler.stats("gen")
    assert stats is not None
    assert (stats.count, stats.errors) == (1, 0)


def test_measure_blocks_and_errors() -> None:
    clock = FakeClock()
    profiler = Profiler(clock=clock)
    with profiler.measure("block"):
        clock.advance(1.5)
    with pytest.raises(KeyError), profiler.measure("block"):
        raise KeyError("k")
    stats = profiler.stats("block")
    assert stats is not None
    assert (stats.count, stats.errors, stats.total_s) == (2, 1, 1.5)


def test_enable_disable_and_clear() -> None:
    profiler = Profiler()

    @profiler.profile("f")
    def f() -> int:
        return 1

    profiler.disable()
    assert f() == 1
    with profiler.measure("block"):
        pass
    assert profiler.all_stats() == []
    profiler.enable()
    f()
    assert profiler.stats("f").count == 1  # type: ignore[union-attr]
    profiler.clear()
    assert profiler.all_stats() == []
    f()  # still recorded after clear: decorated functions keep their entry
    assert profiler.stats("f").count == 1  # type: ignore[union-attr]


def test_report_text_and_json_sorted_by_any_column() -> None:
    clock = FakeClock()
    profiler = Profiler(clock=clock)
    for name, duration_s, calls in (("slow", 1.0, 1), ("busy", 0.01, 50), ("mid", 0.1, 5)):
        for _ in range(calls):
            with profiler.measure(name):
                clock.advance(duration_s)
    text = profiler.report("avg_s")
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["name", "count", "errors"]
    assert [line.split()[0] for line in lines[1:4]] == ["slow", "mid", "busy"]
    data = json.loads(profiler.report("count", fmt="json"))
    assert [row["name"] for row in data["stats"]] == ["busy", "mid", "slow"]
    assert [s.name for s in profiler.slowest(2)] == ["slow", "mid"]
    assert [s.name for s in profiler.most_called(1)] == ["busy"]
    with pytest.raises(InvalidInput, match="sort_by must be one of"):
        profiler.report("speed")
    with pytest.raises(InvalidInput, match="'text' or 'json'"):
        profiler.report(fmt="xml")  # type: ignore[arg-type]


def test_ten_thousand_names_are_bounded() -> None:
    profiler = Profiler(max_names=1000)
    for i in range(10_000):
        with profiler.measure(f"name-{i}"):
            pass
    stats = profiler.all_stats()
    assert len(stats) == 1001  # the first thousand names plus the overflow entry
    overflow = profiler.stats(OVERFLOW_NAME)
    assert overflow is not None
    assert overflow.count == 9000
    report = profiler.report(limit=50)
    assert len(report.splitlines()) == 52  # header, 50 rows, footer
    assert "50 of 1001 names" in report


def test_memory_is_flat_whatever_the_call_count() -> None:
    # Durations from a fake clock, log-spaced from 1 us to about 1 s: the warm-up visits every
    # bucket the sketch will ever need for them, so what the measured calls allocate can only come
    # from their number. (Real durations would add buckets whenever the machine is slow, and other
    # threads' allocations would count: only the profiler's and the sketch's own are traced.)
    clock = FakeClock(0.0)
    profiler = Profiler(clock=clock)
    durations = itertools.cycle([1e-6 * 1.01**step for step in range(1400)])

    @profiler.profile("f")
    def f() -> None:
        clock.advance(next(durations))

    for _ in range(20_000):
        f()
    only_ours = [
        tracemalloc.Filter(True, "*/companion/profiling/*"),
        tracemalloc.Filter(True, "*/companion/monitoring/*"),
    ]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_ours)
        for _ in range(200_000):
            f()
        after = tracemalloc.take_snapshot().filter_traces(only_ours)
    finally:
        tracemalloc.stop()
    stats = profiler.stats("f")
    assert stats is not None
    assert stats.count == 220_000
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, after.compare_to(before, "lineno")[:5]


def test_no_lost_calls_under_eight_threads() -> None:
    profiler = Profiler()
    f = profiler.profile("shared")(lambda: None)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(20_000):
            f()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert profiler.stats("shared").count == 160_000  # type: ignore[union-attr]


def test_memory_and_cpu_usage_do_not_block() -> None:
    profiler = Profiler()
    memory = profiler.memory_usage()
    assert memory["rss_bytes"] > 0
    assert memory["vms_bytes"] >= memory["rss_bytes"]
    assert 0 <= memory["percent"] <= 100
    cpu = profiler.cpu_usage()
    assert cpu["percent"] >= 0
    assert cpu["threads"] >= 1


@pytest.mark.parametrize("name", ["", None, 3])
def test_bad_names_are_rejected(name: object) -> None:
    with pytest.raises(InvalidInput, match="non-empty string"), Profiler().measure(name):  # type: ignore[arg-type]
        pass


def test_max_names_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="max_names"):
        Profiler(max_names=0)
