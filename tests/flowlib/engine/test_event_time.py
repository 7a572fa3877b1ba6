"""Event time: per-key-group watermarks, timers, late events, checkpointed timers.

KeyGroup tests drive the engine's key-group runtime directly with a virtual clock; flow tests
run the same through bytewax.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import override

from flowlib import Context, DeadLetter, Flow, ListSink, ListSource, Processor
from flowlib.engine import run
from flowlib.engine._group import KeyGroup, KeyGroupSpec, KeyRuns
from flowlib.time import END_OF_TIME, EPOCH, EventTime, Late, Timer
from state_backends import MemoryBackend


def at(seconds: float) -> Any:
    return EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True)
class Ev:
    key: str
    t: float
    value: int = 1


@dataclass(frozen=True)
class Fired:
    key: str
    window_end: float
    total: int
    watermark: float


class SumPer10s(Processor[Ev, Fired, str, dict[int, int]]):
    """Sums values per key and 10 s window; emits a window when its timer fires."""

    @override
    def process(self, ctx: Context[str, dict[int, int], Fired], event: Ev) -> None:
        assert ctx.event_time == at(event.t)
        end = int(event.t // 10 * 10 + 10)
        sums = ctx.state.get({})
        sums[end] = sums.get(end, 0) + event.value
        ctx.state.set(sums)
        ctx.timers.at_event_time(at(end))

    @override
    def on_timer(self, ctx: Context[str, dict[int, int], Fired], timer: Timer) -> None:
        sums = ctx.state.get({})
        end = int((timer.time - EPOCH).total_seconds())
        assert ctx.watermark is not None
        wm = (ctx.watermark - EPOCH).total_seconds() if ctx.watermark != END_OF_TIME else -1
        ctx.emit(Fired(ctx.key, end, sums.pop(end), wm))
        if sums:
            ctx.state.set(sums)
        else:
            ctx.state.clear()


class Clock:
    def __init__(self) -> None:
        self.now = at(1_000_000)

    def __call__(self) -> Any:
        return self.now


def group(
    delay: float = 0, lateness: float = 0, idle: float | None = None, resume: bytes | None = None,
    clock: Clock | None = None, recovery: bool = True,
) -> KeyGroup:
    et: EventTime[Ev] = EventTime.of(
        lambda e: at(e.t), max_out_of_orderness=timedelta(seconds=delay),
        allowed_lateness=timedelta(seconds=lateness),
        idle_timeout=None if idle is None else timedelta(seconds=idle),
    )
    spec = KeyGroupSpec(
        "sum", SumPer10s(), str, dict[int, int], MemoryBackend, et, late_wired=True,
        fail=False, recovery=recovery, now=clock or Clock(),
    )
    return KeyGroup(spec, resume)


def runs(*events: Ev) -> KeyRuns:
    """Events in arrival order, consecutive events of a key in one run (as the engine routes)."""
    out: KeyRuns = []
    for e in events:
        if out and out[-1][0] == e.key:
            out[-1][1].append(e)
        else:
            out.append((e.key, [e]))
    return out


def test_windows_fire_when_the_watermark_passes_their_end() -> None:
    g = group(delay=2)
    r = g.process([runs(Ev("a", 1), Ev("b", 3), Ev("a", 9))])
    assert r.out == [] and g.watermark == at(7)
    r = g.process([runs(Ev("a", 11))])  # watermark 9: nothing due yet
    assert r.out == [] and g.watermark == at(9)
    r = g.process([runs(Ev("b", 12))])  # watermark 10 >= end of [0, 10)
    assert r.out == [Fired("a", 10, 2, 10), Fired("b", 10, 1, 10)]
    r = g.end_of_input()
    assert r.out == [Fired("a", 20, 1, -1), Fired("b", 20, 1, -1)]
    assert len(g.backend) == 0 and len(g.timers) == 0


def test_out_of_order_within_bound_is_not_late_and_late_events_are_routed() -> None:
    g = group(delay=5)
    g.process([runs(Ev("a", 20))])  # watermark 15
    r = g.process([runs(Ev("a", 16), Ev("a", 14), Ev("b", 15))])
    assert [(x.key, x.event_time) for x in r.late] == [("a", at(14))]
    assert r.late[0] == Late("sum", "a", Ev("a", 14), at(14), at(15))
    assert r.seen == 3


def test_allowed_lateness_accepts_events_behind_the_watermark() -> None:
    g = group(delay=0, lateness=5)
    g.process([runs(Ev("a", 20))])  # watermark 20, late below 15
    r = g.process([runs(Ev("a", 16), Ev("a", 14))])
    assert [e.event.t for e in r.late] == [14]
    # the event at 16 was accepted: its window [10, 20) is already due, so its timer fires
    assert r.out == [Fired("a", 20, 1, 20)]


def test_idle_watermark_advances_with_processing_time() -> None:
    clock = Clock()
    g = group(delay=1, idle=5, clock=clock)
    g.process([runs(Ev("a", 3))])  # watermark 2; window [0, 10) due at watermark 10
    start = clock.now
    # idle for 5 s, then the watermark moves 1 s per second: reaches 10 after 8 s of wall time
    assert g.next_wakeup() == start + timedelta(seconds=8)
    clock.now = start + timedelta(seconds=4)
    assert g.wake().out == [] and g.watermark == at(2)
    clock.now = start + timedelta(seconds=8)
    assert g.wake().out == [Fired("a", 10, 1, 10)]


class ProcTimer(Processor[Ev, str, str, int]):
    @override
    def process(self, ctx: Context[str, int, str], event: Ev) -> None:
        ctx.state.set(ctx.state.get(0) + 1)
        ctx.timers.at_processing_time(ctx.processing_time + timedelta(seconds=event.t))

    @override
    def on_timer(self, ctx: Context[str, int, str], timer: Timer) -> None:
        ctx.emit(f"{ctx.key}:{timer.kind}:{ctx.state.get(0)}")


def test_processing_time_timers_fire_in_order_on_the_virtual_clock() -> None:
    clock = Clock()
    spec = KeyGroupSpec("p", ProcTimer(), str, int, MemoryBackend, None, late_wired=False,
                        fail=False, recovery=True, now=clock)
    g = KeyGroup(spec, None)
    start = clock.now
    g.process([runs(Ev("a", 30), Ev("b", 10), Ev("a", 20))])
    assert g.next_wakeup() == start + timedelta(seconds=10)
    clock.now = start + timedelta(seconds=25)
    assert g.wake().out == ["b:processing:1", "a:processing:2"]
    restored = KeyGroup(spec, g.snapshot())  # the remaining timer survives a checkpoint
    assert restored.next_wakeup() == start + timedelta(seconds=30)
    clock.now = start + timedelta(seconds=31)
    assert restored.wake().out == ["a:processing:2"]


def test_open_windows_and_timers_survive_snapshot_and_restore() -> None:
    g = group(delay=2)
    g.process([runs(Ev("a", 1), Ev("a", 12), Ev("b", 5))])  # watermark 10: [0,10) fired
    snap = g.snapshot()
    assert snap is not None
    restored = group(delay=2, resume=snap)
    assert restored.watermark == at(10) and len(restored.timers) == 1
    assert restored.process([runs(Ev("a", 3))]).late[0].event == Ev("a", 3)
    assert restored.end_of_input().out == [Fired("a", 20, 1, -1)]
    assert restored.snapshot() is not None and group(resume=restored.snapshot()).eof_done


# --- through bytewax ------------------------------------------------------------------------

def timed_flow(events: list[Ev], out: ListSink[Fired], late: ListSink[Late[str, Ev]] | None,
               dead: ListSink[DeadLetter]) -> Flow:
    flow = Flow("timed", dead_letters=dead, max_key_groups=8)
    src = flow.source(ListSource(events, Ev, batch_size=4), name="events")
    timed = src.with_event_time(lambda e: at(e.t), max_out_of_orderness=timedelta(seconds=3))
    fired = timed.key_by(lambda e: e.key, key_type=str).process(SumPer10s(), name="sum")
    fired.sink(out)
    if late is not None:
        fired.late.sink(late)
    return flow


EVENTS = [Ev("a", 1), Ev("b", 2), Ev("a", 8), Ev("b", 11), Ev("a", 14), Ev("a", 2),
          Ev("b", 25), Ev("a", 21), Ev("a", 3), Ev("b", 30)]


def test_flow_routes_late_events_to_the_late_output() -> None:
    out, late, dead = ListSink(Fired), ListSink[Late[str, Ev]](), ListSink(DeadLetter)
    report = run(timed_flow(EVENTS, out, late, dead))
    # Ev("a", 3) arrives when a's group has seen 21 (watermark 18): late. Ev("a", 2) arrives
    # in a batch after 14 (watermark 11): late too.
    assert sorted(x.event.t for x in late.items) == [2, 3]
    assert dead.items == []
    total = sum(f.total for f in out.items)
    assert total + len(late.items) == len(EVENTS)
    s = report.step("sum")
    assert (s.records_in, s.late) == (10, 2)


def test_flow_without_late_output_dead_letters_late_events() -> None:
    out, dead = ListSink(Fired), ListSink(DeadLetter)
    run(timed_flow(EVENTS, out, None, dead))
    assert sorted(d.record for d in dead.items) == [
        '{"key":"a","t":2,"value":1}', '{"key":"a","t":3,"value":1}']
    assert {d.error_type for d in dead.items} == {"LateEventError"}


def test_event_time_field_is_checked_at_build() -> None:
    from flowlib import FlowBuildError

    flow = Flow("x")
    src = flow.source(ListSource(EVENTS, Ev), name="events")
    with pytest.raises(FlowBuildError, match=r"event time field Ev\.t of step 'events' is float"):
        src.with_event_time("t")
    with pytest.raises(FlowBuildError, match="'when' is not a field of Ev"):
        src.with_event_time("when")


def test_two_workers_give_the_same_windows(tmp_path: Path) -> None:
    results = []
    for workers in (1, 2):
        out, late, dead = ListSink(Fired), ListSink[Late[str, Ev]](), ListSink(DeadLetter)
        run(timed_flow(EVENTS, out, late, dead), workers_per_process=workers)
        results.append((sorted(out.items, key=repr), sorted(late.items, key=repr)))
    assert results[0] == results[1]
