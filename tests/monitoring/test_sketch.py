from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.errors import InvalidInput
from companion.monitoring import InvalidQuantile, QuantileSketch


def exact_quantile(values: list[float], q: float) -> float:
    """Nearest rank: the value at 0-based index ceil(q * n) - 1 of the sorted values."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def within(estimate: float | None, exact: float, accuracy: float) -> bool:
    assert estimate is not None
    # A value below the sketch's MIN_VALUE is reported as 0: allow that absolute slack.
    return abs(estimate - exact) <= accuracy * abs(exact) * (1 + 1e-9) + 1e-9


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(finite, min_size=1, max_size=300),
    q=st.floats(min_value=0.0, max_value=1.0),
    accuracy=st.sampled_from([0.001, 0.01, 0.05]),
)
def test_any_quantile_is_within_the_relative_error_bound(
    values: list[float], q: float, accuracy: float
) -> None:
    sketch = QuantileSketch(accuracy)
    sketch.add_many(values)
    assert within(sketch.quantile(q), exact_quantile(values, q), accuracy)


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.floats(min_value=1e-6, max_value=100.0), min_size=1, max_size=200))
def test_add_and_add_many_agree_and_track_exact_aggregates(values: list[float]) -> None:
    one, many = QuantileSketch(), QuantileSketch()
    for value in values:
        one.add(value)
    many.add_many(values)
    assert one.quantiles((0.5, 0.99)) == many.quantiles((0.5, 0.99))
    assert one.count == many.count == len(values)
    assert one.sum == pytest.approx(math.fsum(values))
    assert one.min == min(values)
    assert one.max == max(values)


def test_p50_p95_p99_on_random_latencies_match_exact_values() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-4, 1.0) for _ in range(20_000)]
    sketch = QuantileSketch(0.01)
    sketch.add_many(values)
    for q in (0.5, 0.95, 0.99, 0.999):
        assert within(sketch.quantile(q), exact_quantile(values, q), 0.01)


def test_nearest_rank_is_not_off_by_one() -> None:
    sketch = QuantileSketch(0.001)
    sketch.add_many(float(v) for v in range(1, 101))
    assert sketch.quantile(0.5) == pytest.approx(50, rel=0.001)
    assert sketch.quantile(0.99) == pytest.approx(99, rel=0.001)
    assert sketch.quantile(0.0) == 1.0  # the exact min
    assert sketch.quantile(1.0) == 100.0  # the exact max


def test_size_is_bounded_whatever_the_number_of_values() -> None:
    sketch = QuantileSketch(0.01)
    rng = random.Random(1)
    sketch.add_many(rng.uniform(0.001, 10.0) for _ in range(50_000))
    # log(10 / 0.001) / log(1.0202) ~ 461 buckets cover the whole range.
    assert sketch.bucket_count <= 470
    assert sketch.count == 50_000


def test_zero_negative_nan_and_huge_values() -> None:
    sketch = QuantileSketch()
    sketch.add_many([-5.0, 0.0, 3.0, math.nan, math.inf])
    assert sketch.count == 4  # NaN ignored
    assert sketch.quantile(0.0) == -5.0
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == math.inf


def test_merge_equals_adding_everything_to_one() -> None:
    left, right, both = QuantileSketch(), QuantileSketch(), QuantileSketch()
    left.add_many([1.0, 2.0, 3.0])
    right.add_many([10.0, 20.0])
    both.add_many([1.0, 2.0, 3.0, 10.0, 20.0])
    left.merge(right)
    assert left.quantiles((0.2, 0.5, 0.8)) == both.quantiles((0.2, 0.5, 0.8))
    assert (left.count, left.sum, left.min, left.max) == (5, 36.0, 1.0, 20.0)
    with pytest.raises(InvalidInput, match="different relative accuracy"):
        left.merge(QuantileSketch(0.05))


def test_empty_sketch_reports_none() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    assert sketch.min is None
    assert sketch.max is None
    sketch.add(1.0)
    sketch.clear()
    assert sketch.count == 0
    assert sketch.quantile(0.5) is None


@pytest.mark.parametrize("q", [-0.1, 1.01, math.nan, "0.5"])
def test_quantile_outside_0_1_is_rejected(q: object) -> None:
    sketch = QuantileSketch()
    sketch.add(1.0)
    with pytest.raises(InvalidQuantile, match=r"in \[0, 1\]"):
        sketch.quantile(q)  # type: ignore[arg-type]


@pytest.mark.parametrize("accuracy", [0.0, 1.0, -0.5])
def test_accuracy_must_be_in_0_1(accuracy: float) -> None:
    with pytest.raises(InvalidInput, match="relative_accuracy"):
        QuantileSketch(accuracy)


def test_cumulative_counts_for_prometheus_buckets() -> None:
    sketch = QuantileSketch(0.01)
    sketch.add_many([0.001, 0.02, 0.02, 0.3, 4.0])
    assert sketch.cumulative_counts([0.01, 0.1, 1.0, 10.0]) == [1, 3, 4, 5]
