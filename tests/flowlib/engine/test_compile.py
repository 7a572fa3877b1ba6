"""How keyed steps reach bytewax: one logic per key group with recovery, else one logic per
worker holding the worker's key groups (each bytewax item costs the same whatever it holds)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import override

from flowlib import Context, DeadLetter, Flow, ListSink, ListSource, Processor, Source
from flowlib.connectors.base import SourcePartition
from flowlib.engine import _compile, run
from flowlib.time import EPOCH, Late, Timer

KEYS = [f"k{i}" for i in range(40)]  # over 8 key groups: every group gets keys


@dataclass(frozen=True)
class Ev:
    key: str
    t: float


def at(seconds: float) -> Any:
    return EPOCH + timedelta(seconds=seconds)


class CountPer10s(Processor[Ev, tuple[str, int, int], str, dict[int, int]]):
    """Counts events per key and 10 s window; emits ``(key, window end, count)`` at its timer."""

    @override
    def process(self, ctx: Context[str, dict[int, int], tuple[str, int, int]], event: Ev) -> None:
        end = int(event.t // 10 * 10 + 10)
        counts = ctx.state.get({})
        counts[end] = counts.get(end, 0) + 1
        ctx.state.set(counts)
        ctx.timers.at_event_time(at(end))

    @override
    def on_timer(self, ctx: Context[str, dict[int, int], tuple[str, int, int]],
                 timer: Timer) -> None:
        counts = ctx.state.get({})
        end = int((timer.time - EPOCH).total_seconds())
        ctx.emit((ctx.key, end, counts.pop(end)))
        ctx.state.set(counts)


def events() -> list[Ev]:
    """Every key every second for 60 s, then one event of k0 far behind: late."""
    evs = [Ev(k, float(s)) for s in range(60) for k in KEYS]
    return [*evs, Ev("k0", 5.0)]


def windows_flow(out: ListSink[tuple[str, int, int]], late: ListSink[Late[str, Ev]],
                 dead: ListSink[DeadLetter]) -> Flow:
    flow = Flow("windows", dead_letters=dead, max_key_groups=8)
    src = flow.source(ListSource(events(), Ev, batch_size=100), name="events")
    timed = src.with_event_time(lambda e: at(e.t), max_out_of_orderness=timedelta(seconds=2))
    fired = timed.key_by(lambda e: e.key, key_type=str).process(CountPer10s(), name="count")
    fired.sink(out)
    fired.late.sink(late)
    return flow


def run_windows(workers: int, **kw: Any) -> tuple[list[Any], list[Any], Any]:
    out, late, dead = ListSink[tuple[str, int, int]](), ListSink[Late[str, Ev]](), ListSink(
        DeadLetter)
    report = run(windows_flow(out, late, dead), workers_per_process=workers, **kw)
    assert dead.items == []
    return sorted(out.items), sorted((x.key, x.event.t) for x in late.items), report.step("count")


def test_one_worker_without_recovery_sends_each_batch_as_one_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []  # key groups in each item the one logic receives
    on_batch = _compile._AllGroupsLogic.on_batch

    def spy(self: Any, values: list[dict[str, Any]]) -> Any:
        calls.extend(len(v) for v in values)
        return on_batch(self, values)

    monkeypatch.setattr(_compile._AllGroupsLogic, "on_batch", spy)
    out, late, counts = run_windows(1)
    batches = -(-len(events()) // 100)
    assert len(calls) == batches  # one item per source batch, however many groups it touches
    assert max(calls) == 8  # ... and here each batch touches all 8 groups
    assert len(out) == len(KEYS) * 6 and late == [("k0", 5.0)]
    assert (counts.records_in, counts.records_out, counts.late) == (len(events()), 240, 1)


def test_logics_per_worker_and_per_group_give_the_same_windows(tmp_path: Path) -> None:
    one = run_windows(1)
    two = run_windows(2)  # two workers: a logic per worker, each holding its groups
    # with recovery, every key group is its own logic (its own snapshots)
    one_per_group = run_windows(1, recovery_dir=tmp_path / "one")
    two_per_group = run_windows(2, recovery_dir=tmp_path / "two")
    assert one[:2] == two[:2] == one_per_group[:2] == two_per_group[:2]
    assert one[0] == sorted((k, end, 10) for k in KEYS for end in range(10, 70, 10))


def test_each_worker_holds_its_own_key_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    holders: dict[str, set[int]] = {}  # key group -> the logics (by id) that received it
    threads: dict[int, set[int]] = {}  # logic -> the threads it ran on
    on_batch = _compile._AllGroupsLogic.on_batch

    def spy(self: Any, values: list[dict[str, Any]]) -> Any:
        threads.setdefault(id(self), set()).add(threading.get_ident())
        for runs_of in values:
            for group in runs_of:
                holders.setdefault(group, set()).add(id(self))
        return on_batch(self, values)

    monkeypatch.setattr(_compile._AllGroupsLogic, "on_batch", spy)
    run_windows(2)
    assert len(holders) == 8 and all(len(h) == 1 for h in holders.values())
    # two logics, one per worker thread: the slot keys landed on different workers
    assert len(threads) == 2 and all(len(t) == 1 for t in threads.values())
    assert len(set().union(*threads.values())) == 2


class SlowSource(Source[Ev]):
    """Batches ``pause`` seconds apart; in between, reads return nothing at once (as a quiet
    Kafka partition does), so the worker is free to fire timers meanwhile."""

    item_type = Ev

    def __init__(self, batches: list[list[Ev]], pause: float) -> None:
        self.batches = batches
        self.pause = pause

    @override
    def partitions(self) -> list[str]:
        return ["slow"]

    @override
    def open(self, partition: str, step: str, resume: Any | None) -> SourcePartition[Ev]:
        return _SlowPartition(self.batches, self.pause)


class _SlowPartition(SourcePartition[Ev]):
    def __init__(self, batches: list[list[Ev]], pause: float) -> None:
        self.batches = list(batches)
        self.pause = pause
        self.sent = 0
        self.next_at = 0.0

    @override
    def read_batch(self) -> tuple[list[Ev], list[DeadLetter]] | None:
        if self.sent == len(self.batches):
            return None
        if time.monotonic() < self.next_at:
            time.sleep(0.001)
            return [], []
        self.sent += 1
        self.next_at = time.monotonic() + self.pause
        return self.batches[self.sent - 1], []

    @override
    def position(self) -> Any:
        return self.sent


class Reminder(Processor[Ev, str, str, int]):
    """Counts events per key; a processing-time timer 50 ms after a key's first event emits
    the count it has by then."""

    @override
    def process(self, ctx: Context[str, int, str], event: Ev) -> None:
        seen = ctx.state.get(0)
        if seen == 0:
            ctx.timers.at_processing_time(ctx.processing_time + timedelta(milliseconds=50))
        ctx.state.set(seen + 1)

    @override
    def on_timer(self, ctx: Context[str, int, str], timer: Timer) -> None:
        ctx.emit(f"{ctx.key}:{ctx.state.get(0)}")


@pytest.mark.parametrize("workers", [1, 2])
def test_processing_time_timers_fire_while_the_input_is_open(workers: int) -> None:
    # batch 1 sets a timer per key; it fires during the 0.5 s pause, before batch 2 counts
    first = [Ev(k, 0.0) for k in KEYS]
    second = [Ev(k, 1.0) for k in KEYS]
    out = ListSink[str]()
    flow = Flow("reminders", dead_letters=ListSink(DeadLetter), max_key_groups=8)
    flow.source(SlowSource([first, second], pause=0.5), name="events").key_by(
        lambda e: e.key, key_type=str).process(Reminder(), name="remind").sink(out)
    run(flow, workers_per_process=workers)
    assert sorted(out.items) == sorted(f"{k}:1" for k in KEYS)
