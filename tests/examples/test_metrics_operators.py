"""The operators of examples/metrics.py under the harness; the harness against the engine."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlib.testing import ProcessorHarness
from flowlib.testing.properties import assert_engine_agrees, assert_snapshot_restore_identity

with mock.patch.object(sys, "argv", ["metrics.py"]):  # the script parses its arguments
    from examples.metrics import Alert, AnomalyScore, Baseline, Detector, WindowStats

T0 = datetime(2014, 1, 1, tzinfo=UTC)
FIVE_MIN = timedelta(minutes=5)

Scorer = ProcessorHarness[WindowStats, Alert, str, Baseline]


def scorer(detector: Detector | None = None) -> Scorer:
    return ProcessorHarness(AnomalyScore(detector or Detector()), key=lambda w: w.series)


def window(i: int, mean: float, series: str = "s", count: int = 12) -> WindowStats:
    end = T0 + FIVE_MIN * i
    return WindowStats(series, end - timedelta(hours=1), end, count, mean, 1.0, mean + 2, mean)


def steady(n: int, series: str = "s") -> list[WindowStats]:
    """A baseline that wobbles a little, so its variance is not zero."""
    return [window(i, 50.0 + (0.5 if i % 2 else -0.5), series) for i in range(n)]


def test_a_spike_after_the_warm_up_raises_one_spike_alert() -> None:
    h = scorer()
    warm = 48 * 12 + 1  # 48 h of 5-minute windows
    h.push_many(steady(warm))
    assert h.outputs == []
    [alert] = h.push(window(warm, 80.0))
    assert (alert.series, alert.rule, alert.ts) == ("s", "spike", T0 + FIVE_MIN * warm)
    assert alert.score > 6 and alert.baseline_mean == h.outputs[0].baseline_mean
    assert h.push(window(warm + 1, 80.0)) == []  # one alert per excursion
    assert h.state["s"].alerted


def test_a_sustained_excursion_alerts_after_the_sustain_time() -> None:
    d = Detector(spike=1000.0, sustain=timedelta(hours=1))
    h = scorer(d)
    warm = 48 * 12 + 1
    h.push_many(steady(warm))
    alerts = []
    for i in range(warm, warm + 24):  # a level 2.5 above the baseline for 2 h
        alerts += h.push(window(i, 52.5))
    assert [a.rule for a in alerts] == ["sustained"]
    assert alerts[0].ts - alerts[0].since >= timedelta(hours=1)


def test_small_windows_are_ignored_and_out_of_order_windows_are_dead_letters() -> None:
    h = scorer()
    h.push(window(0, 50.0, count=3))  # fewer than min_readings: not even a baseline
    assert h.state.get("s") is None
    h.push_many([window(2, 50.0), window(1, 50.0)])
    assert [d.error_type for d in h.dead_letters] == ["ValueError"]
    assert "arrived after the window ending" in h.dead_letters[0].error


series_means = st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=series_means, b=series_means, split=st.integers(0, 80))
def test_harness_and_engine_agree_and_snapshots_restore(
    a: list[float], b: list[float], split: int
) -> None:
    events = [window(i, m, "a") for i, m in enumerate(a)]
    events += [window(i, m, "b") for i, m in enumerate(b)]
    detector = Detector(warmup=timedelta(minutes=30), sustain=timedelta(minutes=10))
    assert_engine_agrees(lambda: scorer(detector), events)
    assert_snapshot_restore_identity(lambda: scorer(detector), events, min(split, len(events)))
