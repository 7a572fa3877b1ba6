"""Window operators driven directly, through a small fake of the engine's event-time loop.

``Driver`` does what the engine promises a keyed step with event time: per event it binds the
key, event time and watermark and calls ``process`` (late events go to ``late`` instead); after
each batch it advances the watermark (max event time - max out-of-orderness) and fires due
event-time timers in time order; at the end the watermark becomes END_OF_TIME, every timer
fires, then ``on_eof`` runs per key that still has state.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, assert_type

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib import Flow, ListSource
from flowlib.codecs import codec_for
from flowlib.errors import FlowlibError, UnsupportedTypeError
from flowlib.flow import ProcessedStream
from flowlib.processor import Context, Processor
from flowlib.time import END_OF_TIME, EPOCH, Timer
from flowlib.timers import TimerTable
from operators.aggregations import (
    Aggregate,
    Collect,
    Count,
    First,
    Mean,
    MeanAcc,
    Multi,
    Percentile,
    StdDev,
    Sum,
)
from operators.windows import SessionWindows, SlidingWindows, TumblingWindows, WindowResult
from state_backends.memory import MemoryBackend

K = TypeVar("K")
V = TypeVar("V")
O = TypeVar("O")  # noqa: E741


@dataclass(frozen=True)
class Reading:
    sensor: str
    at: datetime
    value: float


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def r(seconds: float, value: float = 1.0, sensor: str = "a") -> Reading:
    return Reading(sensor, at(seconds), value)


class FakeContext(Context[K, V, O]):
    __slots__ = ("emitted",)

    def __init__(
        self, backend: MemoryBackend[K, V], timers: TimerTable, lateness: timedelta
    ) -> None:
        super().__init__("windows", backend, timers, allowed_lateness=lateness)
        self.emitted: list[O] = []

    def emit(self, value: O) -> None:
        self.emitted.append(value)


class Driver(Generic[O]):
    """One key group running ``processor`` over Readings keyed by sensor."""

    def __init__(
        self,
        processor: Processor[Reading, O, str, Any],
        *,
        max_out_of_orderness: timedelta = timedelta(0),
        allowed_lateness: timedelta = timedelta(0),
        late_at_limit: bool = True,
    ) -> None:
        self.processor = processor
        # flowlib.time says an event at exactly watermark - allowed_lateness is late; the
        # operators must also be right if the engine lets that event through.
        self.late_at_limit = late_at_limit
        self.ooo = max_out_of_orderness
        self.lateness = allowed_lateness
        state_type = getattr(processor, "state_type", Any)
        self.backend: MemoryBackend[str, Any] = MemoryBackend(codec_for(str), codec_for(state_type))
        self.timers = TimerTable()
        self.ctx: FakeContext[str, Any, O] = FakeContext(
            self.backend, self.timers, allowed_lateness
        )
        self.watermark: datetime | None = None
        self.max_seen: datetime | None = None
        self.processed: list[Reading] = []
        self.late: list[Reading] = []
        self.out: list[O] = []

    def push(self, *events: Reading) -> list[O]:
        """One upstream batch; returns what it emitted (in process and in timers)."""
        ctx = self.ctx
        for event in events:
            wm = self.watermark
            limit = None if wm is None else wm - self.lateness
            if limit is not None and (
                event.at < limit or (self.late_at_limit and event.at == limit)
            ):
                self.late.append(event)
                continue
            ctx.key, ctx.event_time, ctx.watermark = event.sensor, event.at, wm
            self.processor.process(ctx, event)
            self.processed.append(event)
            self.max_seen = event.at if self.max_seen is None else max(self.max_seen, event.at)
        if self.max_seen is not None:
            candidate = self.max_seen - self.ooo
            if self.watermark is None or candidate > self.watermark:
                self.watermark = candidate
        if self.watermark is not None:
            self._fire(self.watermark)
        return self._drain()

    def finish(self) -> list[O]:
        self.watermark = END_OF_TIME
        self._fire(END_OF_TIME)
        for key, _ in list(self.backend.items()):
            self.ctx.key, self.ctx.event_time = key, None
            self.processor.on_eof(self.ctx)
        return self._drain()

    def _fire(self, watermark: datetime) -> None:
        ctx = self.ctx
        ctx.watermark, ctx.event_time = watermark, None
        while due := self.timers.pop_due("event", watermark):
            for t, key in due:
                ctx.key = key
                self.processor.on_timer(ctx, Timer(t, "event"))

    def _drain(self) -> list[O]:
        out = self.ctx.emitted[:]
        self.ctx.emitted.clear()
        self.out += out
        return out

    def state(self, key: str = "a") -> Any:
        return self.backend.get(key)

    def restore_through_arrow(self) -> None:
        """Replace the state by its Arrow snapshot, as a checkpoint and resume would."""
        self.backend.restore(self.backend.snapshot())


def wr(start: float, end: float, value: object, update: bool = False, key: str = "a") -> Any:
    return WindowResult(key, at(start), at(end), value, update)


# --- tumbling ---------------------------------------------------------------------------------


def test_tumbling_fires_when_watermark_reaches_end_and_end_belongs_to_next_window() -> None:
    d = Driver(TumblingWindows(timedelta(seconds=10), Count()))
    assert d.push(r(0), r(5)) == []
    assert d.push(r(9.999999)) == []  # watermark 9.999999 < end 10
    assert d.push(r(10)) == [wr(0, 10, 3)]  # the event at exactly 10 opens [10, 20)
    assert d.state() == {10_000_000: 1}
    assert d.push(r(19)) == []
    assert d.finish() == [wr(10, 20, 2)]
    assert d.late == []


def test_tumbling_late_event_goes_to_late_output_and_changes_nothing() -> None:
    d = Driver(TumblingWindows(timedelta(seconds=10), Sum(lambda x: x.value)))
    d.push(r(3, 1.0), r(12, 2.0))
    assert d.out == [wr(0, 10, 1.0)]
    assert d.push(r(9, 5.0)) == []  # 9 <= watermark 12: late
    assert d.late == [r(9, 5.0)]
    assert d.finish() == [wr(10, 20, 2.0)]


def test_tumbling_align_to_shifts_window_boundaries() -> None:
    op: TumblingWindows[Reading, int, int, str] = TumblingWindows(
        timedelta(hours=1), Count(), align_to=EPOCH + timedelta(minutes=15)
    )
    assert op.windows_of(at(0)) == [(at(-45 * 60), at(15 * 60))]
    assert op.windows_of(at(15 * 60)) == [(at(15 * 60), at(75 * 60))]
    d = Driver(op)
    assert d.push(r(14 * 60), r(15 * 60), r(16 * 60)) == [wr(-45 * 60, 15 * 60, 1)]
    assert d.finish() == [wr(15 * 60, 75 * 60, 2)]


def test_windows_fire_per_key_on_the_shared_group_watermark() -> None:
    d = Driver(TumblingWindows(timedelta(seconds=10), Count()))
    d.push(r(1, sensor="a"), r(2, sensor="b"))
    # b's window fires because a's events move the key group's watermark.
    assert d.push(r(11, sensor="a")) == [wr(0, 10, 1, key="a"), wr(0, 10, 1, key="b")]
    assert d.state("b") is None
    assert d.finish() == [wr(10, 20, 1, key="a")]


def test_out_of_order_events_within_bound_land_in_their_windows() -> None:
    d = Driver(
        TumblingWindows(timedelta(seconds=10), Collect(float, lambda x: x.value)),
        max_out_of_orderness=timedelta(seconds=5),
    )
    assert d.push(r(12, 1), r(3, 2)) == []  # watermark 7
    assert d.push(r(16, 3), r(8, 4)) == [wr(0, 10, [2.0, 4.0])]  # 8 > 7: in time; watermark 11
    assert d.finish() == [wr(10, 20, [1.0, 3.0])]


# --- sliding ----------------------------------------------------------------------------------


def test_sliding_event_belongs_to_length_over_every_windows() -> None:
    op = SlidingWindows(timedelta(seconds=10), timedelta(seconds=2), Count())
    assert op.windows_of(at(7)) == [(at(s), at(s + 10)) for s in (-2, 0, 2, 4, 6)]
    assert op.windows_of(at(6)) == [(at(s), at(s + 10)) for s in (-2, 0, 2, 4, 6)]
    assert op.windows_of(at(8)) == [(at(s), at(s + 10)) for s in (0, 2, 4, 6, 8)]


def test_sliding_windows_fire_in_end_order_with_their_contents() -> None:
    d = Driver(SlidingWindows(timedelta(seconds=4), timedelta(seconds=2), Collect(float, _v)))
    d.push(r(1, 1), r(3, 3))
    # watermark 3: [-2, 2) closed at 2
    assert d.out == [wr(-2, 2, [1.0])]
    assert d.push(r(4, 4)) == [wr(0, 4, [1.0, 3.0])]
    assert d.finish() == [wr(2, 6, [3.0, 4.0]), wr(4, 8, [4.0])]
    assert len(d.backend) == 0 and len(d.timers) == 0


@given(
    t=st.integers(-(10**12), 10**12),
    length=st.integers(1, 10**7),
    every_div=st.integers(1, 50),
    align=st.integers(-(10**9), 10**9),
)
def test_sliding_windows_of_is_exactly_the_windows_containing_t(
    t: int, length: int, every_div: int, align: int
) -> None:
    every = max(1, length // every_div)
    us = timedelta(microseconds=1)
    op = SlidingWindows(length * us, every * us, Count(), align_to=EPOCH + align * us)
    windows = op.windows_of(EPOCH + t * us)
    when = EPOCH + t * us
    assert windows, "every event belongs to some window when every <= length"
    for start, end in windows:
        assert start <= when < end
        assert (start - EPOCH - align * us) % (every * us) == timedelta(0)
    first, last = windows[0][0], windows[-1][0]
    assert not first - every * us <= when < first - every * us + length * us
    assert not last + every * us <= when
    assert len(windows) in (length // every, -(-length // every))


# --- sessions ---------------------------------------------------------------------------------


def test_session_merges_when_a_bridging_event_arrives() -> None:
    d = Driver(
        SessionWindows(timedelta(seconds=10), Collect(float, _v)),
        max_out_of_orderness=timedelta(seconds=30),
    )
    d.push(r(0, 0), r(18, 18))
    assert [(s.start_us, s.last_us) for s in d.state()] == [(0, 0), (18_000_000, 18_000_000)]
    assert {t for _, t, _ in d.timers.entries()} == {at(10), at(28)}
    d.push(r(9, 9))  # within 10 s of both: one session [0, 28)
    assert [(s.start_us, s.last_us) for s in d.state()] == [(0, 18_000_000)]
    assert {t for _, t, _ in d.timers.entries()} == {at(28)}  # the stale timer was cancelled
    assert d.out == []
    assert d.finish() == [wr(0, 28, [0.0, 18.0, 9.0])]


def test_session_boundary_event_at_last_plus_gap_starts_a_new_session() -> None:
    d = Driver(
        SessionWindows(timedelta(seconds=10), Count()), max_out_of_orderness=timedelta(seconds=60)
    )
    d.push(r(0), r(10), r(19.999999))
    assert d.finish() == [wr(0, 10, 1), wr(10, 29.999999, 2)]


def test_session_fires_when_watermark_reaches_last_event_plus_gap() -> None:
    d = Driver(SessionWindows(timedelta(seconds=5), Count()))
    assert d.push(r(0), r(3)) == []
    assert d.push(r(7.999999)) == []  # extends the session: it now closes at 12.999999
    assert d.push(r(13)) == [wr(0, 12.999999, 3)]
    assert [(s.start_us, s.last_us) for s in d.state()] == [(13_000_000, 13_000_000)]
    assert d.finish() == [wr(13, 18, 1)]
    assert len(d.backend) == 0 and len(d.timers) == 0


def test_session_late_event_updates_a_fired_session() -> None:
    d = Driver(
        SessionWindows(timedelta(seconds=5), Count()), allowed_lateness=timedelta(seconds=20)
    )
    d.push(r(0))
    assert d.push(r(10)) == [wr(0, 5, 1)]
    # 3 is within the lateness; the session's new end 8 is behind the watermark: re-fired now.
    assert d.push(r(3)) == [wr(0, 8, 2, update=True)]
    # 7 bridges [0, 8) and [10, 15): their merge ends at 15 > watermark 10, so it waits.
    assert d.push(r(7)) == []
    assert d.push(r(15)) == [wr(0, 15, 4, update=True)]
    assert d.finish() == [wr(15, 20, 1)]
    assert len(d.backend) == 0 and len(d.timers) == 0


# --- allowed lateness and cleanup -------------------------------------------------------------


def test_allowed_lateness_refires_an_updated_result_immediately() -> None:
    d = Driver(
        TumblingWindows(timedelta(seconds=10), Count()), allowed_lateness=timedelta(seconds=5)
    )
    d.push(r(1))
    assert d.push(r(12)) == [wr(0, 10, 1)]
    assert d.state() == {0: 1, 10_000_000: 1}  # kept until watermark >= 10 + 5
    assert d.push(r(8)) == [wr(0, 10, 2, update=True)]  # 8 > 12 - 5: not late
    assert d.push(r(16)) == []  # watermark 16 >= 15: [0, 10) is dropped
    assert d.state() == {10_000_000: 2}
    assert d.push(r(9)) == []
    assert d.late == [r(9)]
    assert d.finish() == [wr(10, 20, 2)]
    assert len(d.backend) == 0 and len(d.timers) == 0


def test_first_result_of_a_window_opened_after_its_end_is_not_an_update() -> None:
    d = Driver(
        TumblingWindows(timedelta(seconds=10), Count()), allowed_lateness=timedelta(seconds=5)
    )
    d.push(r(12))
    assert d.push(r(8)) == [wr(0, 10, 1)]  # [0, 10) never existed: emitted at once, as new
    assert d.push(r(9)) == [wr(0, 10, 2, update=True)]
    assert d.push(r(15)) == []  # watermark 15 >= 10 + 5: [0, 10) is dropped
    assert d.state() == {10_000_000: 2}


def test_state_is_deleted_when_a_key_has_no_open_window() -> None:
    d = Driver(TumblingWindows(timedelta(seconds=10), Count()))
    d.push(r(1, sensor="a"), r(2, sensor="b"))
    assert set(dict(d.backend.items())) == {"a", "b"}
    d.push(r(10, sensor="a"))
    assert set(dict(d.backend.items())) == {"a"}
    assert [k for k, _, _ in d.timers.entries()] == ["a"]
    d.finish()
    assert len(d.backend) == 0 and len(d.timers) == 0


# --- against a brute-force model --------------------------------------------------------------


def _v(x: Reading) -> float:
    return x.value


events_strategy = st.lists(
    st.tuples(st.sampled_from("ab"), st.integers(0, 120)), min_size=1, max_size=40
)


def _readings(raw: list[tuple[str, int]]) -> list[Reading]:
    return [Reading(k, at(t), float(i)) for i, (k, t) in enumerate(raw)]


def _batches(events: list[Reading], size: int) -> list[list[Reading]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


FixedOp = (
    TumblingWindows[Reading, list[float], list[float]]
    | SlidingWindows[Reading, list[float], list[float]]
)
SessionOp = SessionWindows[Reading, tuple[int, list[float]], tuple[int, list[float]]]
GAP = timedelta(seconds=7)


def _fixed_op(sliding: bool) -> FixedOp:
    length, agg = timedelta(seconds=10), Collect(float, _v)
    if sliding:
        return SlidingWindows(length, timedelta(seconds=5), agg)
    return TumblingWindows(length, agg)


def _session_op() -> SessionOp:
    return SessionWindows(GAP, Multi(Count(), Collect(float, _v)))


def check_fixed(op: FixedOp, processed: list[Reading], out: list[Any]) -> None:
    """The latest result of every window holds exactly its events (in arrival order, as
    Collect keeps them); a window's first result is not an update, later ones are."""
    expected: dict[tuple[str, datetime], Any] = defaultdict(lambda: (None, []))
    for e in processed:
        for start, end in op.windows_of(e.at):
            expected[e.sensor, start] = (end, [*expected[e.sensor, start][1], e.value])
    latest: dict[tuple[str, datetime], Any] = {}
    for res in out:
        assert res.update == ((res.key, res.start) in latest)
        latest[res.key, res.start] = (res.end, res.value)
    assert latest == dict(expected)


def check_sessions(processed: list[Reading], out: list[Any], lateness: bool) -> None:
    """Sessions are the runs of events less than GAP apart; each one's latest result (by its
    start) holds exactly its events. Without lateness each session fires once, as new."""
    expected = {}
    for key in "ab":
        times = sorted((e for e in processed if e.sensor == key), key=lambda e: e.at)
        group: list[Reading] = []
        for e in [*times, None]:
            if group and (e is None or e.at - group[-1].at >= GAP):
                values = sorted(x.value for x in group)
                expected[key, group[0].at] = (group[-1].at + GAP, len(group), values)
                group = []
            if e is not None:
                group.append(e)
    latest = {(x.key, x.start): (x.end, x.value[0], sorted(x.value[1])) for x in out}
    assert {k: latest[k] for k in expected} == expected
    if not lateness:
        assert latest == expected and len(out) == len(expected)
        assert not any(x.update for x in out)


@settings(max_examples=150)
@given(
    raw=events_strategy,
    batch=st.integers(1, 5),
    ooo=st.integers(0, 30),
    lateness=st.integers(0, 30),
    sliding=st.booleans(),
    late_at_limit=st.booleans(),
)
def test_fixed_windows_match_brute_force(
    raw: list[tuple[str, int]],
    batch: int,
    ooo: int,
    lateness: int,
    sliding: bool,
    late_at_limit: bool,
) -> None:
    op = _fixed_op(sliding)
    d = Driver(
        op,
        max_out_of_orderness=timedelta(seconds=ooo),
        allowed_lateness=timedelta(seconds=lateness),
        late_at_limit=late_at_limit,
    )
    for b in _batches(_readings(raw), batch):
        d.push(*b)
    d.finish()
    check_fixed(op, d.processed, d.out)
    assert len(d.backend) == 0 and len(d.timers) == 0


@settings(max_examples=150)
@given(
    raw=events_strategy,
    batch=st.integers(1, 5),
    ooo=st.integers(0, 60),
    lateness=st.sampled_from([0, 0, 5, 20]),
    late_at_limit=st.booleans(),
)
def test_sessions_match_brute_force(
    raw: list[tuple[str, int]], batch: int, ooo: int, lateness: int, late_at_limit: bool
) -> None:
    d = Driver(
        _session_op(),
        max_out_of_orderness=timedelta(seconds=ooo),
        allowed_lateness=timedelta(seconds=lateness),
        late_at_limit=late_at_limit,
    )
    for b in _batches(_readings(raw), batch):
        d.push(*b)
    d.finish()
    check_sessions(d.processed, d.out, lateness > 0)
    assert len(d.backend) == 0 and len(d.timers) == 0


@settings(max_examples=60, deadline=None)
@given(
    raw=events_strategy,
    batch=st.integers(1, 5),
    ooo=st.integers(0, 30),
    lateness=st.sampled_from([0, 0, 5, 20]),
    kind=st.sampled_from(["tumbling", "sliding", "session"]),
    restore_after=st.integers(0, 8),
)
def test_through_the_engine_runtime_results_match_the_model(
    raw: list[tuple[str, int]], batch: int, ooo: int, lateness: int, kind: str, restore_after: int
) -> None:
    """The same model checks through flowlib.testing.ProcessorHarness, which runs the engine's
    own key-group runtime (late routing, timers, Arrow snapshots restored mid-stream)."""
    try:
        from flowlib.testing import ProcessorHarness
    except ImportError:  # the harness is newer than these operators
        pytest.skip("flowlib.testing is not available")
    op: FixedOp | SessionOp = _session_op() if kind == "session" else _fixed_op(kind == "sliding")
    processor: Processor[Reading, WindowResult[str, Any], str, Any] = op
    h = ProcessorHarness(
        processor,
        key=lambda x: x.sensor,
        key_type=str,
        event_time="at",
        max_out_of_orderness=timedelta(seconds=ooo),
        allowed_lateness=timedelta(seconds=lateness),
    )
    events = _readings(raw)
    out: list[Any] = []
    for i, b in enumerate(_batches(events, batch)):
        out += h.push_many(b)
        if i == restore_after:
            h.restore(h.snapshot())
    out += h.end_of_input()
    late = {id(x.event) for x in h.late}
    processed = [e for e in events if id(e) not in late]
    if isinstance(op, SessionWindows):
        check_sessions(processed, out, lateness > 0)
    else:
        check_fixed(op, processed, out)
    assert len(h.state) == 0 and h.timers == []


# --- state types: exact Arrow schemas that round-trip -----------------------------------------


def _ops() -> list[tuple[Processor[Reading, Any, str, Any], str]]:
    mean_acc = "struct<count: int64, total: double>"
    welford = "struct<count: int64, mean: double, m2: double>"
    session = "list<item: struct<start_us: int64, last_us: int64, acc: {}, fired: bool>>"
    ten, five = timedelta(seconds=10), timedelta(seconds=5)
    return [
        (TumblingWindows(ten, Count()), "map<int64, int64>"),
        (TumblingWindows(ten, Mean(_v)), f"map<int64, {mean_acc}>"),
        (SlidingWindows(ten, five, Percentile(0.5, _v)), "map<int64, list<item: double>>"),
        (
            TumblingWindows(ten, First(float, _v)),
            "map<int64, struct<value: double, time_us: int64>>",
        ),
        (
            SlidingWindows(ten, five, Multi(Mean(_v), StdDev(_v), Percentile(0.99, _v))),
            f"map<int64, struct<f0: {mean_acc}, f1: {welford}, f2: list<item: double>>>",
        ),
        (SessionWindows(five, Count()), session.format("int64")),
        (
            SessionWindows(five, Multi(Sum(_v), Collect(str, lambda x: x.sensor))),
            session.format("struct<f0: double, f1: list<item: large_string>>"),
        ),
    ]


@pytest.mark.parametrize(("op", "arrow"), _ops())
def test_state_type_gives_exact_arrow_schema_that_round_trips(
    op: Processor[Reading, Any, str, Any], arrow: str
) -> None:
    codec = codec_for(op.state_type)  # type: ignore[attr-defined]
    assert str(codec.arrow_type) == arrow
    d = Driver(op, max_out_of_orderness=timedelta(seconds=30))
    d.push(r(1, 1.5), r(4, 2.5), r(12, 3.0), r(3, 0.5, sensor="b"))
    values = [v for _, v in d.backend.items()]
    assert values and all(v for v in values)
    assert codec.from_arrow(codec.to_arrow(values)) == values


@pytest.mark.parametrize(("op", "arrow"), _ops())
def test_checkpoint_restore_mid_stream_changes_no_output(
    op: Processor[Reading, Any, str, Any], arrow: str
) -> None:
    def run(restore: bool) -> list[Any]:
        d = Driver(op, max_out_of_orderness=timedelta(seconds=3))
        for b in _batches([r(t, t % 7, sensor="ab"[t % 2]) for t in range(0, 40, 3)], 2):
            d.push(*b)
            if restore:
                d.restore_through_arrow()
        return d.out + d.finish()

    assert run(restore=True) == run(restore=False)


def test_window_results_encode_for_sinks() -> None:
    codec = codec_for(WindowResult[str, tuple[float, float, float]])
    result = WindowResult("a", at(0), at(60), (1.0, 0.5, 2.0), update=True)
    assert codec.decode(codec.encode(result)) == result
    assert codec.from_arrow(codec.to_arrow([result])) == [result]


# --- construction errors ----------------------------------------------------------------------


def test_without_event_time_process_says_how_to_declare_it() -> None:
    op = TumblingWindows(timedelta(seconds=1), Count())
    ctx: FakeContext[str, Any, Any] = FakeContext(
        MemoryBackend(codec_for(str), codec_for(op.state_type)), TimerTable(), timedelta(0)
    )
    ctx.key = "a"
    with pytest.raises(FlowlibError, match="with_event_time"):
        op.process(ctx, r(0))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        TumblingWindows(timedelta(0), Count())
    with pytest.raises(ValueError, match="every <= length"):
        SlidingWindows(timedelta(seconds=1), timedelta(seconds=2), Count())
    with pytest.raises(ValueError, match="positive"):
        SessionWindows(timedelta(0), Count())
    with pytest.raises(ValueError, match="timezone"):
        TumblingWindows(timedelta(seconds=1), Count(), align_to=datetime(2024, 1, 1))


class _NoAccType(Aggregate[float, int, int]):
    def create(self) -> int:
        return 0

    def add(self, acc: int, value: float) -> int:
        return acc

    def merge(self, a: int, b: int) -> int:
        return a

    def result(self, acc: int) -> int:
        return acc


class _Opaque:
    pass


class _OpaqueAcc(_NoAccType):
    acc_type = _Opaque


def test_aggregate_without_encodable_acc_type_is_refused_at_build() -> None:
    with pytest.raises(TypeError, match="acc_type"):
        TumblingWindows(timedelta(seconds=1), _NoAccType())
    with pytest.raises(UnsupportedTypeError, match="_Opaque"):
        SessionWindows(timedelta(seconds=1), _OpaqueAcc())


# --- in a flow: types for mypy and for checkpoints --------------------------------------------


def test_in_a_flow_result_types_are_inferred_and_state_type_is_exact() -> None:
    flow = Flow("windows")
    readings = flow.source(ListSource([r(0)], Reading)).with_event_time("at")
    keyed = readings.key_by(lambda x: x.sensor)
    means = keyed.process(TumblingWindows(timedelta(minutes=1), Mean(lambda x: x.value)))
    assert_type(means, ProcessedStream[WindowResult[str, float], str, Reading])
    stats = keyed.process(
        SessionWindows(
            timedelta(minutes=5),
            Multi(Mean(_v), StdDev(_v), Percentile(0.99, _v)),
        )
    )
    assert_type(stats, ProcessedStream[WindowResult[str, tuple[float, float, float]], str, Reading])
    assert means.node.state_type == dict[int, MeanAcc]  # type: ignore[attr-defined]
    codec_for(stats.node.state_type)  # type: ignore[attr-defined]


def test_window_bounds_are_shared_datetimes_and_their_memo_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import operators.windows as windows_module

    op = TumblingWindows(timedelta(seconds=10), Count())
    d = Driver(op)
    out = d.push(r(1), r(5, sensor="b"), r(12))
    assert out == [wr(0, 10, 1), wr(0, 10, 1, key="b")]
    assert out[0].end is out[1].end  # every key shares one datetime per bound
    monkeypatch.setattr(windows_module, "_DATETIMES_KEPT", 4)
    out = d.push(r(25), r(35), r(45, sensor="b")) + d.finish()
    assert out == [wr(10, 20, 1), wr(20, 30, 1), wr(30, 40, 1), wr(40, 50, 1, key="b")]
    assert len(op._datetimes) <= 4
