"""Aggregates: results against the statistics module, merge laws, codec-ready accumulators."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, assert_type

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowlib.codecs import codec_for
from flowlib.time import EPOCH
from operators.aggregations import (
    Aggregate,
    Collect,
    Count,
    First,
    Last,
    Max,
    Mean,
    MeanAcc,
    Min,
    Multi,
    Percentile,
    StdDev,
    Sum,
)

floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(floats, min_size=1, max_size=60)


def close(a: float, b: float, scale: float = 1.0) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, scale))


@given(samples)
def test_numeric_aggregates_match_the_statistics_module(xs: list[float]) -> None:
    scale = max(abs(x) for x in xs)
    assert Count().of_values(xs) == len(xs)
    assert close(Sum().of_values(xs), math.fsum(xs), scale * len(xs))
    assert close(Mean().of_values(xs), statistics.fmean(xs), scale)
    assert Min().of_values(xs) == min(xs)
    assert Max().of_values(xs) == max(xs)
    assert close(StdDev(population=True).of_values(xs), statistics.pstdev(xs), scale)
    if len(xs) >= 2:
        assert close(StdDev().of_values(xs), statistics.stdev(xs), scale)
    else:
        assert math.isnan(StdDev().of_values(xs))


@given(st.lists(floats, min_size=2, max_size=60), st.integers(1, 99))
def test_percentile_matches_inclusive_quantiles(xs: list[float], k: int) -> None:
    expected = statistics.quantiles(xs, n=100, method="inclusive")[k - 1]
    assert close(Percentile(k / 100).of_values(xs), expected, max(abs(x) for x in xs))


def test_percentile_edges() -> None:
    assert Percentile(0.0).of_values([3.0, 1.0, 2.0]) == 1.0
    assert Percentile(1.0).of_values([3.0, 1.0, 2.0]) == 3.0
    assert Percentile(0.99).of_values([7.0]) == 7.0
    assert math.isnan(Percentile(0.5).of_values([]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Percentile(99)


def test_stddev_is_stable_far_from_zero() -> None:
    xs = [1e9 + d for d in (4.0, 7.0, 13.0, 16.0)]
    assert StdDev().of_values(xs) == pytest.approx(statistics.stdev(xs), rel=1e-12)


def test_empty_results() -> None:
    assert math.isnan(Mean().of_values([]))
    assert Min().of_values([]) == math.inf
    assert Max().of_values([]) == -math.inf
    assert math.isnan(StdDev(population=True).of_values([]))
    with pytest.raises(ValueError, match="First of no values"):
        First(int).of_values([])


def test_extractors_pick_the_value_of_each_event() -> None:
    events = [("a", 2.0), ("b", 4.0)]
    mean: Mean[tuple[str, float]] = Mean(lambda e: e[1])
    names: Collect[tuple[str, float], str] = Collect(str, lambda e: e[0])
    both: Multi[tuple[str, float], Any, tuple[int, float]] = Multi(Count(), Max(lambda e: e[1]))
    assert mean.of_values(events) == 3.0
    assert names.of_values(events) == ["a", "b"]
    assert both.of_values(events) == (2, 4.0)


def at(s: int) -> datetime:
    return EPOCH + timedelta(seconds=s)


Row = tuple[datetime, str]


def _name(r: Row) -> str:
    return r[1]


def _when(r: Row) -> datetime:
    return r[0]


def test_first_and_last_by_arrival_and_by_time() -> None:
    rows = [(at(5), "x"), (at(2), "y"), (at(9), "z"), (at(2), "w")]
    assert First(str, _name).of_values(rows) == "x"
    assert Last(str, _name).of_values(rows) == "w"
    # by time; ties go to the earlier arrival for First and the later one for Last
    assert First(str, _name, by=_when).of_values(rows) == "y"
    assert Last(str, _name, by=_when).of_values(rows) == "z"
    assert Last(str, _name, by=_when).of_values(rows[:2] + rows[3:]) == "x"


def test_first_and_last_merge_keep_arrival_order_on_ties() -> None:
    first, last = First(str), Last(str)
    a, b = first.add(first.create(), "a"), first.add(first.create(), "b")
    assert first.result(first.merge(a, b)) == "a"
    a, b = last.add(last.create(), "a"), last.add(last.create(), "b")
    assert last.result(last.merge(a, b)) == "b"
    assert first.merge(None, None) is None


# --- merge laws, for every built-in -----------------------------------------------------------

Rows = list[tuple[float, int]]


def _value(row: tuple[float, int]) -> float:
    return row[0]


def _label(row: tuple[float, int]) -> int:
    return row[1]


def _time(row: tuple[float, int]) -> datetime:
    return at(row[1] % 7)


AGGREGATES: dict[str, Callable[[], Aggregate[tuple[float, int], Any, Any]]] = {
    "count": Count,
    "sum": lambda: Sum(_value),
    "mean": lambda: Mean(_value),
    "min": lambda: Min(_value),
    "max": lambda: Max(_value),
    "p90": lambda: Percentile(0.9, _value),
    "stddev": lambda: StdDev(_value),
    "pstddev": lambda: StdDev(_value, population=True),
    "first": lambda: First(int, _label),
    "last": lambda: Last(int, _label),
    "first_by": lambda: First(int, _label, by=_time),
    "last_by": lambda: Last(int, _label, by=_time),
    "collect": lambda: Collect(int, _label),
    "multi": lambda: Multi(Mean(_value), StdDev(_value), Collect(int, _label)),
}

rows = st.lists(st.tuples(floats, st.integers(0, 1000)), max_size=20)


def _fold(agg: Aggregate[tuple[float, int], Any, Any], xs: Rows) -> Any:
    acc = agg.create()
    for x in xs:
        acc = agg.add(acc, x)
    return acc


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or close(a, b, 1e6 * 60)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", AGGREGATES)
@given(xs=rows, ys=rows, zs=rows)
def test_merge_is_associative_and_agrees_with_add(name: str, xs: Rows, ys: Rows, zs: Rows) -> None:
    agg = AGGREGATES[name]()
    # Fresh accumulators for each expression: add and merge may update their first argument.
    left = agg.merge(agg.merge(_fold(agg, xs), _fold(agg, ys)), _fold(agg, zs))
    right = agg.merge(_fold(agg, xs), agg.merge(_fold(agg, ys), _fold(agg, zs)))
    whole = _fold(agg, xs + ys + zs)
    if not xs + ys + zs and name in ("first", "last", "first_by", "last_by"):
        assert left is right is whole is None
        return
    assert _same(agg.result(left), agg.result(right))
    assert _same(agg.result(left), agg.result(whole))


@pytest.mark.parametrize("name", AGGREGATES)
@given(xs=rows)
def test_empty_accumulator_is_a_merge_identity(name: str, xs: Rows) -> None:
    agg = AGGREGATES[name]()
    if not xs and name in ("first", "last", "first_by", "last_by"):
        return
    expected = agg.result(_fold(agg, xs))
    assert _same(agg.result(agg.merge(agg.create(), _fold(agg, xs))), expected)
    assert _same(agg.result(agg.merge(_fold(agg, xs), agg.create())), expected)


@pytest.mark.parametrize("name", AGGREGATES)
def test_acc_type_encodes_real_accumulators_through_arrow(name: str) -> None:
    agg = AGGREGATES[name]()
    codec = codec_for(agg.acc_type)
    accs = [agg.create(), _fold(agg, [(1.5, 3), (-2.0, 8)]), _fold(agg, [(4.0, 1)])]
    assert codec.from_arrow(codec.to_arrow(accs)) == accs


def test_acc_types_are_precise() -> None:
    assert str(codec_for(Count().acc_type).arrow_type) == "int64"
    assert str(codec_for(Mean().acc_type).arrow_type) == "struct<count: int64, total: double>"
    assert (
        str(codec_for(StdDev().acc_type).arrow_type)
        == "struct<count: int64, mean: double, m2: double>"
    )
    assert str(codec_for(Percentile(0.5).acc_type).arrow_type) == "list<item: double>"
    assert str(codec_for(Last(str).acc_type).arrow_type) == (
        "struct<value: large_string, time_us: int64>"
    )
    assert str(codec_for(Multi(Min(), Collect(str)).acc_type).arrow_type) == (
        "struct<f0: double, f1: list<item: large_string>>"
    )


def test_multi_of_five_is_typed_per_part() -> None:
    stats = Multi(Count(), Mean(), StdDev(), Percentile(0.5), Last(float))
    result = stats.of_values([1.0, 2.0, 6.0])
    assert_type(result, tuple[int, float, float, float, float])
    assert result == (3, 3.0, statistics.stdev([1.0, 2.0, 6.0]), 2.0, 6.0)


# --- runs: prepare + add_range, as the window operators fold them -----------------------------

class _AtomicSpread(Aggregate[tuple[float, int], tuple[float, float], float]):
    """A user-defined atomic aggregate: Multi folds it through its own add_range."""

    acc_type = tuple[float, float]
    atomic_ranges = True

    def create(self) -> tuple[float, float]:
        return (math.inf, -math.inf)

    def add(self, acc: tuple[float, float], value: tuple[float, int]) -> tuple[float, float]:
        return (min(acc[0], value[0]), max(acc[1], value[0]))

    def merge(self, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return (min(a[0], b[0]), max(a[1], b[1]))

    def result(self, acc: tuple[float, float]) -> float:
        return acc[1] - acc[0]


RANGE_AGGREGATES: dict[str, Callable[[], Aggregate[tuple[float, int], Any, Any]]] = {
    **AGGREGATES,
    "multi_fast": lambda: Multi(Count(), Sum(_value), Max(_value), Min(_value)),
    "multi_ints": lambda: Multi(Sum(_label), Mean(_label), Max(_label), Count()),
    "multi_user": lambda: Multi(Count(), Sum(_value), _AtomicSpread()),
}
wild = st.floats(allow_nan=True, allow_infinity=True)
wild_rows = st.lists(st.tuples(wild, st.integers(0, 1000)), max_size=20)


@pytest.mark.parametrize("name", RANGE_AGGREGATES)
@given(start=wild_rows, run=wild_rows, bounds=st.tuples(st.integers(0, 20), st.integers(0, 20)))
def test_add_range_is_exactly_repeated_add(
    name: str, start: Rows, run: Rows, bounds: tuple[int, int]
) -> None:
    agg = RANGE_AGGREGATES[name]()
    lo, hi = min(min(bounds), len(run)), min(max(bounds), len(run))
    expected = _fold(agg, start + run[lo:hi])
    got = agg.add_range(_fold(agg, start), agg.prepare(run), lo, hi)
    # repr: bit-exact floats (the same rounding as add, not just close), NaN included.
    assert repr(got) == repr(expected)


def test_builtin_numeric_aggregates_and_their_multi_fold_ranges_atomically() -> None:
    fast: list[Aggregate[Any, Any, Any]] = [
        Count(), Sum(), Mean(), Min(), Max(), Multi(Count(), Sum(), Mean())
    ]
    assert all(a.atomic_ranges for a in fast)
    slow: list[Aggregate[Any, Any, Any]] = [
        StdDev(), Percentile(0.5), Collect(float), First(float), Multi(Count(), StdDev())
    ]
    assert not any(a.atomic_ranges for a in slow)
    mean = Mean()
    acc = mean.add(mean.create(), 2.0)
    with pytest.raises(TypeError):
        mean.add_range(acc, mean.prepare(["x"]), 0, 1)  # type: ignore[list-item]
    assert acc == MeanAcc(1, 2.0)  # a failed add_range left it as it was


def test_multi_extracts_each_distinct_extractor_once_per_run() -> None:
    calls: list[float] = []

    def value(x: float) -> float:
        calls.append(x)
        return x

    agg = Multi(Count(), Sum(value), Max(value), Min(abs))
    prepared = agg.prepare([1.0, -3.0])
    assert calls == [1.0, -3.0]
    assert agg.add_range(agg.create(), prepared, 0, 2) == (2, -2.0, 1.0, 1.0)


def test_sums_of_ints_beyond_float_precision_round_as_repeated_add() -> None:
    # sum() adds ints to a float start in C (3.11); the rounding must still be add's.
    values = [2**53 + 1, True, 3, 2**63 + 5, -(2**60), 0.1]
    aggregates: list[Aggregate[float, Any, float]] = [Sum(), Mean()]
    for agg in aggregates:
        acc = agg.create()
        for v in values:
            acc = agg.add(acc, v)
        assert repr(agg.add_range(agg.create(), agg.prepare(values), 0, len(values))) == repr(acc)
