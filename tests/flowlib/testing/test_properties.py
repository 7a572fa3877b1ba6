"""Property helpers: snapshot/restore identity, order insensitivity, harness == engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlib.testing import OutputMismatch, ProcessorHarness
from flowlib.testing.properties import (
    assert_engine_agrees,
    assert_order_insensitive,
    assert_snapshot_restore_identity,
)
from flowlib.testing.strategies import event_times, from_type, out_of_order
from tests.flowlib.testing.processors import (
    CountInMemory,
    FirstPerKey,
    Reading,
    Window,
    WindowSum,
    at,
)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DELAY = timedelta(seconds=5)

READINGS = st.lists(
    from_type(
        Reading, sensor=st.sampled_from("abc"), ts=event_times(span=timedelta(seconds=60)),
        value=st.integers(0, 9),
    ),
    max_size=15,
)


def windows(key_groups: int = 1) -> ProcessorHarness[Reading, Window, str, dict[int, int]]:
    return ProcessorHarness(
        WindowSum(), key=lambda r: r.sensor, event_time="ts", max_out_of_orderness=DELAY,
        key_groups=key_groups,
    )


@SETTINGS
@given(readings=READINGS, split=st.integers(0, 15))
def test_window_sums_survive_snapshot_and_restore(readings: list[Reading], split: int) -> None:
    assert_snapshot_restore_identity(windows, readings, split)


@SETTINGS
@given(data=st.data(), readings=READINGS)
def test_window_sums_do_not_depend_on_order_within_the_delay(
    data: st.DataObject, readings: list[Reading]
) -> None:
    in_order = sorted(readings, key=lambda r: r.ts)
    shuffled = data.draw(out_of_order(readings, lambda r: r.ts, DELAY))
    assert_order_insensitive(windows, in_order, shuffled)


@settings(SETTINGS, max_examples=15)
@given(readings=READINGS, key_groups=st.sampled_from([1, 4]), workers=st.sampled_from([1, 2]))
def test_harness_and_engine_agree_on_window_sums(
    readings: list[Reading], key_groups: int, workers: int
) -> None:
    assert_engine_agrees(lambda: windows(key_groups), readings, workers=workers)


def test_state_outside_ctx_state_fails_the_snapshot_property() -> None:
    def make() -> ProcessorHarness[str, tuple[str, int], str, int]:
        return ProcessorHarness(CountInMemory(), key=lambda w: w)

    with pytest.raises(OutputMismatch, match=r"outputs: outputs differ \(restored"):
        assert_snapshot_restore_identity(make, ["a", "a", "b"], split=2)


def test_an_order_dependent_processor_fails_the_order_property() -> None:
    def make() -> ProcessorHarness[Reading, Reading, str, int]:
        return ProcessorHarness(FirstPerKey(), key=lambda r: r.sensor)

    first, second = Reading("a", at(1)), Reading("a", at(2))
    assert_order_insensitive(make, [first], [first])
    with pytest.raises(OutputMismatch, match=r"\.ts: .* != "):
        assert_order_insensitive(make, [first, second], [second, first])


def test_late_events_fail_the_order_property() -> None:
    early, late = Reading("a", at(1)), Reading("a", at(30))
    with pytest.raises(OutputMismatch, match="1 late event"):
        assert_order_insensitive(windows, [early, late], [late, early])


def test_engine_agreement_compares_late_events_and_dead_letters_too() -> None:
    readings = [Reading("a", at(30)), Reading("a", at(1)), Reading("b", at(2))]
    assert_engine_agrees(windows, readings)
    h = windows()
    for r in readings:
        h.push(r)
    engine = windows().run_engine(readings)
    assert [x.event for x in engine.late] == [x.event for x in h.late] == readings[1:]
