from __future__ import annotations

import pytest

from companion.monitoring import InvalidWindow, WindowedSketch
from tests._clock import FakeClock


def make(clock: FakeClock) -> WindowedSketch:
    return WindowedSketch(clock, slot_s=10.0, fine_slots=6, coarse_slots=15)


def test_a_time_window_is_time_not_a_count() -> None:
    clock = FakeClock(0.0)
    window = make(clock)
    for _ in range(1000):
        window.add(1.0)  # a burst of old values
    clock.advance(120)
    window.add(5.0)
    assert window.window(60).count == 1
    assert window.window(60).quantile(0.5) == pytest.approx(5.0, rel=0.01)
    assert window.window(300).count == 1001
    assert window.total().count == 1001


def test_values_age_out_of_each_window() -> None:
    clock = FakeClock(0.0)
    window = make(clock)
    window.add(1.0)
    clock.advance(59)
    assert window.window(60).count == 1
    clock.advance(11)  # 70 s later: out of the 1-minute window, still in the 5-minute one
    assert window.window(60).count == 0
    assert window.window(300).count == 1
    clock.advance(900)
    assert window.window(900).count == 0
    assert window.total().count == 1


def test_every_window_sees_recent_values() -> None:
    clock = FakeClock(5.0)
    window = make(clock)
    for second in range(0, 900, 5):
        window.add(float(second + 1))
        clock.advance(5)
    assert window.window(10).count in (1, 2)
    assert 10 <= window.window(60).count <= 12
    assert 48 <= window.window(300).count <= 60
    assert window.window(900).count >= 168


def test_long_idle_gaps_and_a_clock_going_backwards() -> None:
    clock = FakeClock(0.0)
    window = make(clock)
    window.add(1.0)
    clock.advance(10_000)
    window.add(2.0)
    assert window.window(900).count == 1
    clock.advance(-30)  # keep filling the current slot rather than lose data
    window.add(3.0)
    assert window.window(60).count == 2


def test_clear_forgets_everything() -> None:
    clock = FakeClock()
    window = make(clock)
    window.add(1.0)
    window.clear()
    assert window.total().count == 0
    assert window.window(60).count == 0


@pytest.mark.parametrize("window_s", [0, -1, 901, float("nan")])
def test_windows_outside_the_history_are_rejected(window_s: float) -> None:
    with pytest.raises(InvalidWindow, match="window_s"):
        make(FakeClock()).window(window_s)


def test_non_numbers_fail_at_the_call_and_nan_is_ignored() -> None:
    window = make(FakeClock())
    with pytest.raises(TypeError):
        window.add("1.5")  # type: ignore[arg-type]
    window.add(float("nan"))
    window.add(2)
    assert window.total().count == 1


def test_pending_values_are_folded_before_every_read() -> None:
    window = make(FakeClock())
    for _ in range(5):  # far fewer than FOLD_AT: all still pending
        window.add(1.0)
    assert window.window(10).count == 5
    assert window.total().sum == 5.0
