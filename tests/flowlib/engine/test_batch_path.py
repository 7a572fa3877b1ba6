"""The batch path of keyed steps: ``Processor.process_batch``, integer event times, and the
promise that it gives the results of the per-event path whatever the batching.

Driven through ``ProcessorHarness``, which routes with the engine's ``route_batch`` and runs
the engine's ``KeyGroup``; one flow test runs the same through bytewax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typing_extensions import override

from flowlib import Context, DeadLetter, Flow, ListSink, ListSource, Processor
from flowlib.engine import run
from flowlib.engine._group import KeyGroup, KeyGroupSpec, uses_batches
from flowlib.errors import FlowBuildError
from flowlib.testing import ProcessorHarness
from flowlib.time import EPOCH, EventTime
from operators.aggregations import Count, Max, Mean, Min, Multi, Sum
from operators.windows import SlidingWindows, TumblingWindows, WindowResult
from state_backends.memory import MemoryBackend


@dataclass(frozen=True)
class Ev:
    key: str
    ms: int
    value: float = 1.0


def value(e: Ev) -> float:
    return e.value


def ms_time(e: Ev) -> Any:
    return EPOCH + timedelta(milliseconds=e.ms)


class Recorder(Processor[Ev, str, str, int]):
    """Records what each process_batch call saw."""

    state_type = int

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int], list[int] | None, Any]] = []

    @override
    def process(self, ctx: Context[str, int, str], event: Ev) -> None:
        ctx.emit(f"process {event.ms}")

    @override
    def process_batch(
        self, ctx: Context[str, int, str], events: Sequence[Ev], times: Sequence[int] | None
    ) -> None:
        self.calls.append(
            (ctx.key, [e.ms for e in events], None if times is None else list(times),
             ctx.watermark)
        )


def harness(
    processor: Processor[Ev, Any, str, Any], **kw: Any
) -> ProcessorHarness[Any, Any, Any, Any]:
    return ProcessorHarness(processor, key=lambda e: e.key, key_type=str, **kw)


# --- the hook ---------------------------------------------------------------------------------


def test_process_batch_gets_each_keys_on_time_run_with_times_and_the_previous_watermark() -> None:
    rec = Recorder()
    h = harness(rec, event_time=EventTime.of("ms", unit="ms"))
    h.push_many([Ev("a", 1000), Ev("b", 1500), Ev("a", 2000)])
    # In time order: one run per key, times in microseconds, no watermark yet.
    assert rec.calls == [("a", [1000, 2000], [1_000_000, 2_000_000], None),
                         ("b", [1500], [1_500_000], None)]
    rec.calls.clear()
    h.push_many([Ev("b", 1999), Ev("b", 2000), Ev("a", 2500), Ev("b", 2100), Ev("a", 2600)])
    # 1999 is behind the watermark 2000 in force before the batch: late. 2100 arrives after
    # 2500 moved the (one key group's) watermark: late too, though 2100 > 2000.
    assert [e.event.ms for e in h.late] == [1999, 2100]
    assert [e.watermark for e in h.late] == [EPOCH + timedelta(seconds=2),
                                             EPOCH + timedelta(seconds=2.5)]
    assert rec.calls == [("b", [2000], [2_000_000], EPOCH + timedelta(seconds=2)),
                         ("a", [2500, 2600], [2_500_000, 2_600_000],
                          EPOCH + timedelta(seconds=2))]


def test_allowed_lateness_keeps_the_per_event_path() -> None:
    rec = Recorder()
    et: EventTime[Ev] = EventTime.of("ms", unit="ms", allowed_lateness=timedelta(seconds=1))
    assert not uses_batches(rec, et)
    h = harness(rec, event_time=et)
    assert h.push_many([Ev("a", 1000), Ev("a", 500)]) == ["process 1000", "process 500"]
    assert rec.calls == []


def test_untimed_steps_call_process_batch_per_key_run_without_times() -> None:
    rec = Recorder()
    h = harness(rec)
    h.push_many([Ev("a", 1), Ev("b", 2), Ev("a", 3)])
    assert sorted(rec.calls) == [("a", [1, 3], None, None), ("b", [2], None, None)]


def test_default_process_batch_binds_event_time_per_event_and_dead_letters_failures() -> None:
    class Strict(Processor[Ev, Any, str, int]):
        state_type = int

        @override
        def process(self, ctx: Context[str, int, Any], event: Ev) -> None:
            if event.value < 0:
                raise ValueError(f"negative value at {event.ms}")
            ctx.emit(ctx.event_time)

        @override
        def process_batch(
            self, ctx: Context[str, int, Any], events: Sequence[Ev], times: Sequence[int] | None
        ) -> None:
            ctx.emit(("run", len(events)))
            super().process_batch(ctx, events, times)
            ctx.emit(("after", ctx.event_time))

    h = harness(Strict(), event_time=EventTime.of("ms", unit="ms"))
    out = h.push_many([Ev("a", 5), Ev("a", 6, -1.0), Ev("a", 7)])
    assert out == [("run", 3), EPOCH + timedelta(milliseconds=5),
                   EPOCH + timedelta(milliseconds=7), ("after", None)]
    assert [d.error for d in h.dead_letters] == ["negative value at 6"]


class Picky(Processor[Ev, float, str, int]):
    """Reports negative values with ctx.dead_letter; raises on NaN (the whole run fails)."""

    state_type = int

    @override
    def process(self, ctx: Context[str, int, float], event: Ev) -> None:
        raise AssertionError("the batch path must not call process")

    @override
    def process_batch(
        self, ctx: Context[str, int, float], events: Sequence[Ev], times: Sequence[int] | None
    ) -> None:
        for e in events:
            if e.value != e.value:
                raise ValueError("NaN in the run")
        for e in events:
            if e.value < 0:
                ctx.dead_letter(e, ValueError(f"negative: {e.ms}"))
            else:
                ctx.emit(e.value)


def test_dead_letters_from_process_batch_and_an_escaping_error_fails_the_whole_run() -> None:
    h = harness(Picky(), event_time=EventTime.of("ms", unit="ms"), late_output=True)
    out = h.push_many([Ev("a", 1, 1.0), Ev("a", 2, -1.0), Ev("b", 3, float("nan")),
                       Ev("b", 4, 2.0)])
    assert out == [1.0]
    assert sorted(d.error for d in h.dead_letters) == ["NaN in the run", "NaN in the run",
                                                      "negative: 2"]
    assert {d.step for d in h.dead_letters} == {h.step}


def test_on_error_fail_raises_what_process_batch_reports() -> None:
    h = harness(Picky(), event_time=EventTime.of("ms", unit="ms"), on_error="fail")
    with pytest.raises(ValueError, match="negative: 2"):
        h.push_many([Ev("a", 1, 1.0), Ev("a", 2, -1.0)])


# --- integer event times ----------------------------------------------------------------------


def test_integer_times_in_seconds_and_microseconds() -> None:
    for unit, factor in (("s", 1_000_000), ("us", 1)):
        rec = Recorder()
        h = harness(rec, event_time=EventTime.of("ms", unit=unit))  # type: ignore[arg-type]
        h.push_many([Ev("a", 3)])
        assert rec.calls[0][2] == [3 * factor]


def test_unusable_integer_times_are_dead_letters_naming_the_problem() -> None:
    @dataclass(frozen=True)
    class Loose:
        key: str
        ms: Any

    h: ProcessorHarness[Any, Any, Any, Any] = ProcessorHarness(
        Recorder(), key=lambda e: e.key, key_type=str, event_time=EventTime.of("ms", unit="ms"),
    )
    h.push_many([Loose("a", 1), Loose("a", 1.5), Loose("a", "2"), Loose("a", 10**30)])
    errors = [d.error for d in h.dead_letters]
    assert len(errors) == 3
    assert "must be an int (ms since the epoch, as declared), got float (1.5)" in errors[0]
    assert "got str ('2')" in errors[1]
    assert "outside the datetime range" in errors[2]


def test_a_datetime_function_returning_an_int_says_to_declare_a_unit() -> None:
    h = harness(Recorder(), event_time=EventTime.of(lambda e: e.ms))
    h.push_many([Ev("a", 1)])
    assert "declare a unit" in h.dead_letters[0].error


def test_event_time_field_type_is_checked_against_the_unit() -> None:
    flow = Flow("f", dead_letters=ListSink(DeadLetter))
    events = flow.source(ListSource([Ev("a", 1)], Ev))
    with pytest.raises(FlowBuildError, match=r"Ev.ms of .* is int, not datetime \(declare unit"):
        events.with_event_time("ms")
    with pytest.raises(FlowBuildError, match=r"Ev.key .* is str, not int \(unit='ms'"):
        events.with_event_time("key", unit="ms")
    with pytest.raises(ValueError, match="unit must be one of"):
        events.with_event_time("ms", unit="minutes")  # type: ignore[arg-type]


def test_integer_event_times_in_a_flow_give_the_windows_of_datetime_times() -> None:
    events = [Ev(k, ms, float(i)) for i, (k, ms) in enumerate(
        [("a", 100), ("b", 9_000), ("a", 10_500), ("b", 2_000), ("a", 31_000), ("b", 40_000)]
    )]

    def windows(timed: str) -> list[Any]:
        flow = Flow("w", dead_letters=ListSink(DeadLetter))
        src = flow.source(ListSource(events, Ev), name="events")
        stream = (src.with_event_time("ms", unit="ms") if timed == "int"
                  else src.with_event_time(ms_time))
        out = ListSink[WindowResult[str, tuple[int, float]]]()
        stream.key_by(lambda e: e.key, key_type=str).process(
            TumblingWindows(timedelta(seconds=10), Multi(Count(), Sum(value))), name="w"
        ).sink(out)
        run(flow)
        return sorted((r.key, r.start, r.value) for r in out.items)

    got = windows("int")
    assert got == windows("datetime")
    assert got[0] == ("a", EPOCH, (1, 0.0))
    assert len(got) == 5  # b's 2_000 arrives behind 9_000: late, so [0, 10) of b holds one


# --- same results as the per-event path, whatever the batching --------------------------------


class PerEventTumbling(TumblingWindows[Ev, Any, Any, str]):
    process_batch = Processor.process_batch  # back to the engine's per-event path


class PerEventSliding(SlidingWindows[Ev, Any, Any, str]):
    process_batch = Processor.process_batch


def _op(sliding: bool, per_event: bool) -> Any:
    agg = Multi(Count(), Sum(value), Max(value), Min(value), Mean(value))
    if sliding:
        cls: Any = PerEventSliding if per_event else SlidingWindows
        return cls(timedelta(seconds=10), timedelta(seconds=3), agg)
    cls = PerEventTumbling if per_event else TumblingWindows
    return cls(timedelta(seconds=10), agg)


def _run(events: list[Ev], batch: int, sliding: bool, per_event: bool, delay: int,
         unit: bool) -> tuple[list[Any], list[int]]:
    op = _op(sliding, per_event)
    assert uses_batches(op, None) is not per_event
    et: EventTime[Ev] = (
        EventTime.of("ms", unit="ms", max_out_of_orderness=timedelta(milliseconds=delay))
        if unit else EventTime.of(ms_time, max_out_of_orderness=timedelta(milliseconds=delay))
    )
    h = harness(op, event_time=et, key_groups=2)
    out: list[Any] = []
    for i in range(0, len(events), batch):
        out += h.push_many(events[i : i + batch])
    out += h.end_of_input()
    assert h.dead_letters == []
    assert len(h.state) == 0 and h.timers == []
    return (
        sorted(out, key=lambda r: (r.key, r.start, r.update)),
        sorted(e.event.ms for e in h.late),
    )


events_strategy = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 40_000),
              st.sampled_from([0.5, 1.0, -2.25, 1e16, float("nan")])),
    min_size=1, max_size=60,
)


@settings(max_examples=120, deadline=None)
@given(
    raw=events_strategy,
    in_order=st.booleans(),
    batch=st.integers(1, 25),
    sliding=st.booleans(),
    delay=st.sampled_from([0, 0, 1_500, 8_000]),
    unit=st.booleans(),
)
def test_batch_path_equals_the_per_event_path_for_any_batching(
    raw: list[tuple[str, int, float]], in_order: bool, batch: int, sliding: bool, delay: int,
    unit: bool,
) -> None:
    if in_order:
        raw = sorted(raw, key=lambda x: x[1])
    events = [Ev(k, ms, v) for k, ms, v in raw]
    reference = _run(events, 1, sliding, per_event=True, delay=delay, unit=unit)
    got = _run(events, batch, sliding, per_event=False, delay=delay, unit=unit)
    # repr: NaN != NaN, but the same fold gives the same NaN at the same place.
    assert repr(got) == repr(reference)


def test_failing_extractor_on_the_batch_path_dead_letters_only_its_events() -> None:
    def strict(e: Ev) -> float:
        if e.value < 0:
            raise ValueError(f"bad value at {e.ms}")
        return e.value

    op = TumblingWindows(timedelta(seconds=10), Multi(Count(), Sum(strict)))
    h = harness(op, event_time=EventTime.of("ms", unit="ms"))
    h.push_many([Ev("a", 1, 1.0), Ev("a", 2, -1.0), Ev("a", 3, 2.0)])
    out = h.end_of_input()
    assert [d.error for d in h.dead_letters] == ["bad value at 2"]
    assert [(r.key, r.value) for r in out] == [("a", (2, 3.0))]


class FailsOnNegative(Processor[Ev, int, str, int]):
    state_type = int

    @override
    def process(self, ctx: Context[str, int, int], event: Ev) -> None:
        if event.value < 0:
            raise ValueError("negative")
        ctx.emit(event.ms)


class FailsOnNegativeBatched(FailsOnNegative):
    @override
    def process_batch(
        self, ctx: Context[str, int, int], events: Sequence[Ev], times: Sequence[int] | None
    ) -> None:
        super().process_batch(ctx, events, times)


@pytest.mark.parametrize("processor", [FailsOnNegative(), FailsOnNegativeBatched()])
def test_an_on_time_event_that_fails_still_advances_the_watermark_on_both_paths(
    processor: Processor[Ev, int, str, int],
) -> None:
    h = harness(processor, event_time=EventTime.of("ms", unit="ms"))
    assert h.push_many([Ev("a", 1000), Ev("a", 5000, -1.0)]) == [1000]
    assert h.push_many([Ev("a", 4000), Ev("a", 6000)]) == [6000]
    assert [d.error for d in h.dead_letters] == ["negative"]
    assert [e.event.ms for e in h.late] == [4000]


# --- what the context tells process_batch -------------------------------------------------------


class Seen(Processor[Ev, str, str, int]):
    """Records the context's watermark (both forms) and order flag per process_batch call."""

    state_type = int

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, int | None, bool]] = []

    @override
    def process(self, ctx: Context[str, int, str], event: Ev) -> None:
        raise AssertionError("the batch path calls process_batch")

    @override
    def process_batch(
        self, ctx: Context[str, int, str], events: Sequence[Ev], times: Sequence[int] | None
    ) -> None:
        self.calls.append((ctx.key, ctx.watermark, ctx.watermark_us, ctx.times_sorted))


def test_process_batch_sees_the_watermark_in_microseconds_and_whether_times_are_sorted() -> None:
    seen = Seen()
    h = harness(seen, event_time=EventTime.of("ms", unit="ms"))
    h.push_many([Ev("a", 1000), Ev("b", 1500), Ev("a", 2000)])
    assert seen.calls == [("a", None, None, True), ("b", None, None, True)]
    seen.calls.clear()
    # 2600 then 2500: the batch's times go back, so the engine cannot promise an order.
    h.push_many([Ev("a", 2600), Ev("b", 2500), Ev("a", 3000)])
    wm = EPOCH + timedelta(seconds=2)
    assert sorted(seen.calls) == [("a", wm, 2_000_000, False)]
    assert [e.event.ms for e in h.late] == [2500]


def test_runs_given_without_times_get_them_and_unusable_times_dead_letter() -> None:
    class Times(Processor[Any, Any, str, int]):
        state_type = int

        @override
        def process(self, ctx: Context[str, int, Any], event: Any) -> None:
            raise AssertionError("the batch path calls process_batch")

        @override
        def process_batch(
            self, ctx: Context[str, int, Any], events: Sequence[Any],
            times: Sequence[int] | None,
        ) -> None:
            ctx.emit((ctx.key, list(times or []), ctx.times_sorted))

    @dataclass(frozen=True)
    class Loose:
        ms: Any

    spec = KeyGroupSpec("t", Times(), str, int, MemoryBackend, EventTime.of("ms", unit="ms"),
                        late_wired=True, fail=False, recovery=False)
    group = KeyGroup(spec, None)
    # KeyRuns (as tests and harnesses hand them), not the routing's TimedRuns.
    res = group.process([[("a", [Loose(3), Loose("x")]), ("b", [Loose(2)]), ("a", [Loose(4)])]])
    assert res.out == [("a", [3_000, 4_000], False)]  # b's 2 is behind a's 3: late
    assert [e.event for e in res.late] == [Loose(2)]
    assert len(res.dead) == 1 and "got str ('x')" in res.dead[0].error
    assert res.seen == 4
    assert group.watermark == EPOCH + timedelta(milliseconds=4)
    assert group.max_event_time == EPOCH + timedelta(milliseconds=4)
