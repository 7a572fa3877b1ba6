"""ProcessorHarness: events, event time, processing time, errors, state, snapshots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowlib import FlowBuildError, FlowlibError
from flowlib.dead_letter import DeadLetter
from flowlib.engine._group import LateEventError
from flowlib.testing import HarnessSnapshot, ProcessorHarness, VirtualClock
from flowlib.time import END_OF_TIME, EventTime
from operators.aggregate import Count, Keyed
from tests.flowlib.testing.processors import (
    Beat,
    CountInMemory,
    Heartbeat,
    Reading,
    SneakyState,
    Upper,
    Window,
    WindowSum,
    at,
)


def windows(**options: object) -> ProcessorHarness[Reading, Window, str, dict[int, int]]:
    return ProcessorHarness(
        WindowSum(), key=lambda r: r.sensor, event_time="ts",
        max_out_of_orderness=timedelta(seconds=2), **options,  # type: ignore[arg-type]
    )


def test_keyed_state_and_outputs_are_typed_and_per_key() -> None:
    h = ProcessorHarness(Count[str, str](), key=lambda w: w, key_type=str)
    assert h.push_many(["a", "b", "a"]) == []
    assert dict(h.state) == {"a": 2, "b": 1}
    assert h.state["a"] == 2 and "c" not in h.state and len(h.state) == 2
    with pytest.raises(KeyError):
        h.state["c"]
    assert h.end_of_input() == [Keyed("a", 2), Keyed("b", 1)]
    assert h.outputs == [Keyed("a", 2), Keyed("b", 1)]
    assert h.step == "Count" and h.key_type is str and h.state_type is int
    assert h.end_of_input() == []  # end of input is handled once, as in a resumed run


def test_event_time_windows_fire_as_the_watermark_passes() -> None:
    h = windows()
    assert h.push(Reading("a", at(1))) == [] and h.watermark == at(-1)
    h.push_many([Reading("b", at(3)), Reading("a", at(9))])
    assert h.watermark == at(7) and [t[1] for t in h.timers] == [at(10), at(10)]
    assert h.push(Reading("a", at(12))) == [Window("a", at(10), 2), Window("b", at(10), 1)]
    assert h.end_of_input() == [Window("a", at(20), 1)]
    assert h.watermark == END_OF_TIME and len(h.state) == 0


def test_advance_watermark_fires_timers_and_never_goes_back() -> None:
    h = windows()
    h.push_many([Reading("a", at(1)), Reading("a", at(5))])
    assert h.watermark == at(3)
    assert h.advance_watermark(at(10)) == [Window("a", at(10), 2)]
    assert h.advance_watermark(at(5)) == [] and h.watermark == at(10)
    h.push(Reading("a", at(15)))
    assert h.advance_watermark(at(20)) == [Window("a", at(20), 1)]


def test_late_events_go_to_late_or_to_dead_letters() -> None:
    h = windows(allowed_lateness=timedelta(seconds=1))
    h.push(Reading("a", at(20)))  # watermark 18: late below 17
    h.push_many([Reading("a", at(17)), Reading("a", at(16))])
    assert [(x.key, x.event_time, x.watermark) for x in h.late] == [("a", at(16), at(18))]
    assert h.dead_letters == []
    quiet = windows(late_output=False)
    quiet.push(Reading("a", at(20)))
    quiet.push(Reading("a", at(10)))
    assert quiet.late == []
    assert [d.error_type for d in quiet.dead_letters] == [LateEventError.__name__]


def test_an_event_time_object_is_accepted_as_is() -> None:
    et: EventTime[Reading] = EventTime.of(lambda r: r.ts, max_out_of_orderness=timedelta(0))
    h = ProcessorHarness(WindowSum(), key=lambda r: r.sensor, event_time=et)
    h.push(Reading("a", at(25)))
    assert h.watermark == at(25)


def test_processing_time_timers_fire_in_order_on_the_virtual_clock() -> None:
    start = at(1_000)
    h = ProcessorHarness(Heartbeat(), key=lambda k: k, clock=VirtualClock(start))
    h.push("a")
    h.advance_processing_time(timedelta(seconds=5))
    h.push_many(["b", "a"])
    assert h.advance_processing_time(timedelta(seconds=4)) == []
    # a beats at 10, 20, 30; b at 15, 25, 35: one advance fires them interleaved, in order
    beats = h.advance_processing_time(timedelta(seconds=60))
    assert [(b.key, (b.at - start).seconds, b.seen) for b in beats] == [
        ("a", 10, 2), ("b", 15, 1), ("a", 20, 2), ("b", 25, 1), ("a", 30, 2), ("b", 35, 1),
    ]
    assert h.processing_time == start + timedelta(seconds=69) and h.timers == []
    assert all(isinstance(b, Beat) for b in h.outputs)
    with pytest.raises(ValueError, match="backwards"):
        h.advance_processing_time(timedelta(seconds=-1))


def test_idle_watermark_advances_with_processing_time() -> None:
    h = windows(idle_timeout=timedelta(seconds=5))
    h.push(Reading("a", at(3)))  # watermark 1; window [0, 10) closes at 10
    assert h.advance_processing_time(timedelta(seconds=8)) == []
    assert h.advance_processing_time(timedelta(seconds=1)) == [Window("a", at(10), 1)]


def test_failures_become_dead_letters_or_raise() -> None:
    h = ProcessorHarness(Upper())
    assert h.push_many(["a", "", "b"]) == ["A", "B"]
    assert [(d.step, d.error_type, d.error, d.record) for d in h.dead_letters] == [
        ("Upper", "ValueError", "empty event", "")
    ]
    strict = ProcessorHarness(Upper(), on_error="fail")
    with pytest.raises(ValueError, match="empty event"):
        strict.push("")


def test_key_function_failures_and_unhashable_keys_are_dead_letters() -> None:
    def second_letter(word: str) -> Any:
        return [word] if word == "list" else word[1]

    h = ProcessorHarness(Count[str, str](), key=second_letter, key_type=str)
    h.push_many(["xa", "", "list", "ya"])
    assert dict(h.state) == {"a": 2}
    assert [(d.step, d.error_type) for d in h.dead_letters] == [
        ("Count.key_by", "IndexError"), ("Count.key_by", "FlowlibError")
    ]
    strict = ProcessorHarness(Count[str, Any](), key=lambda w: [w], on_error="fail")
    with pytest.raises(FlowlibError, match="not hashable"):
        strict.push("a")


def test_stateless_processors_run_without_key_and_without_state() -> None:
    h = ProcessorHarness(SneakyState())
    assert h.push("a") == []
    assert [d.error for d in h.dead_letters] == [
        "step 'SneakyState' has no keyed state: key the stream first "
        "(stream.key_by(...).process(...))"
    ]
    assert h.snapshot().groups and dict(h.state) == {}


def test_build_time_checks_are_the_flows() -> None:
    with pytest.raises(FlowBuildError, match="keeps keyed state: key the stream"):
        ProcessorHarness(Heartbeat())
    with pytest.raises(FlowBuildError, match="event time needs a keyed processor"):
        ProcessorHarness(Upper(), event_time=lambda s: at(0))
    with pytest.raises(FlowBuildError, match="'when' is not a field of Reading"):
        ProcessorHarness(WindowSum(), key=lambda r: r.sensor, event_time="when")


def test_snapshot_and_restore_round_trip_state_timers_watermark_and_clock() -> None:
    h = windows()
    h.push_many([Reading("a", at(1)), Reading("b", at(12)), Reading("a", at(5))])
    h.advance_processing_time(timedelta(seconds=3))
    snap = h.snapshot()
    assert isinstance(snap, HarnessSnapshot) and snap.step == "WindowSum"
    fresh = windows()
    fresh.restore(snap)
    assert dict(fresh.state) == dict(h.state) and fresh.timers == h.timers
    assert fresh.watermark == h.watermark and fresh.processing_time == h.processing_time
    assert fresh.end_of_input() == h.end_of_input()


def test_restoring_a_snapshot_of_another_step_is_refused() -> None:
    snap = windows().snapshot()
    other = ProcessorHarness(WindowSum(), key=lambda r: r.sensor, step="other")
    with pytest.raises(FlowlibError, match="snapshot of step 'WindowSum'"):
        other.restore(snap)


def test_state_kept_outside_ctx_state_is_lost_by_a_restore() -> None:
    h = ProcessorHarness(CountInMemory(), key=lambda w: w)
    h.push_many(["a", "a"])
    restored = ProcessorHarness(CountInMemory(), key=lambda w: w)
    restored.restore(h.snapshot())
    assert restored.end_of_input() == [("a", 0)] != h.end_of_input()


def test_key_groups_split_the_watermark_as_the_engine_does() -> None:
    one = windows()
    many = windows(key_groups=8)
    for h in (one, many):
        h.push_many([Reading("a", at(1)), Reading("b", at(2))])
        h.push(Reading("a", at(30)))
    assert one.outputs == [Window("a", at(10), 1), Window("b", at(10), 1)]
    # with 8 groups, a's watermark does not move b's group
    assert many.outputs == [Window("a", at(10), 1)]
    assert many.watermark is not None and many.watermark < at(28)


def test_dead_letter_records_are_the_engines() -> None:
    h = ProcessorHarness(Upper())
    h.push("")
    d = h.dead_letters[0]
    assert isinstance(d, DeadLetter) and d.origin is None
