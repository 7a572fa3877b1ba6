"""Batch latencies, checkpoint grouping and the key-group probe read by observers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowlib import DeadLetter, Flow, ListSink, ListSource
from flowlib.engine import run
from flowlib.engine._counters import Counters
from flowlib.engine._live_stats import CheckpointTally, Histogram, StateProbe
from flowlib.time import END_OF_TIME, to_micros
from operators.aggregate import Count, Keyed


def test_histogram_buckets_are_upper_bounds_inclusive_and_cumulative() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 3.0):
        h.observe(v)
    assert h.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert h.count == 5
    assert h.sum == 4.65


def test_batches_are_timed_only_when_asked() -> None:
    c = Counters("f", [("s", "map")])
    c.add("s", 5, 5, 0, started=c.start())
    assert c.latencies()["s"].count == 0
    c.timed = True
    started = c.start()
    c.add("s", 5, 5, 0, started=started)
    h = c.latencies()["s"]
    assert h.count == 1
    assert 0 < h.sum < 1
    assert c.report(0).step("s").records_in == 10


def test_snapshots_close_together_are_one_checkpoint() -> None:
    t = CheckpointTally(gap=0.5)
    # epoch 1: three groups of two steps, back to back
    t.record("a", 0.01, 100, now=10.00)
    t.record("a", 0.02, 200, now=10.03)
    t.record("b", 0.01, 50, now=10.05)
    assert t.take_finished(now=10.2) == []  # not idle for gap yet: may still grow
    [first] = t.take_finished(now=10.6)
    assert (first.number, first.groups, first.bytes, first.bytes_by_step) == (
        1, 3, 350, {"a": 300, "b": 50})
    assert abs(first.seconds - 0.04) < 1e-9
    # epoch 2 begins more than gap after epoch 1 ended: a new checkpoint, closed when the
    # next one starts even without a take in between
    t.record("a", 0.1, 10, now=12.0)
    t.record("a", 0.1, 10, now=14.0)
    count, durations, total, last = t.summary(now=14.1)
    assert count == 2
    assert durations.count == 2
    assert total == 350 + 10
    assert last is not None and last.number == 2
    finished = t.take_finished(now=14.1, all_=True)  # the run ended: close what is open
    assert [cp.number for cp in finished] == [2, 3]
    assert t.summary(now=14.1)[0] == 3
    assert t.take_finished(now=20.0, all_=True) == []


def test_a_long_snapshot_does_not_split_its_checkpoint() -> None:
    t = CheckpointTally(gap=0.5)
    t.record("a", 0.01, 1, now=1.0)
    t.record("a", 2.0, 1, now=3.1)  # started at 1.1: 0.1 s after the previous one ended
    [cp] = t.take_finished(now=10.0)
    assert cp.groups == 2


@dataclass
class _Backend:
    n: int

    def approximate_len(self) -> int:
        return self.n


@dataclass
class _Group:
    keys: int
    watermark: datetime | None
    backend: Any = field(init=False)

    def __post_init__(self) -> None:
        self.backend = _Backend(self.keys)

    @property
    def watermark_us(self) -> int | None:
        return None if self.watermark is None else to_micros(self.watermark)


def test_probe_sums_keys_and_takes_the_earliest_watermark() -> None:
    p = StateProbe()
    early = datetime(2024, 1, 1, tzinfo=UTC)
    late = datetime(2024, 1, 2, tzinfo=UTC)
    p.watch("win", _Group(3, late))
    p.watch("win", _Group(4, early))
    p.watch("win", _Group(0, None))  # no event yet: no watermark
    p.watch("done", _Group(2, END_OF_TIME))  # input ended: no lag to report
    p.watch("plain", _Group(5, None))
    assert p.state_keys() == {"win": 7, "done": 2, "plain": 5}
    assert p.watermarks() == {"win": early}


def test_a_runs_checkpoints_count_the_bytes_of_incremental_files(tmp_path: Path) -> None:
    """Incremental checkpoints write state to files of their own and hand bytewax only a
    record naming them: the bytes counted must include the files'."""
    out: ListSink[Keyed[int, int]] = ListSink()
    flow = Flow("counting", dead_letters=ListSink(DeadLetter))
    nums = flow.source(ListSource(range(100_000), int), name="nums")
    nums.key_by(lambda x: x % 50_000, key_type=int).process(Count(), name="count").sink(out)
    seen: list[Counters] = []
    # One epoch: one checkpoint, where each group writes a base file of its ~400 keys.
    run(flow, recovery_dir=tmp_path, snapshot_interval=timedelta(seconds=60),
        incremental_checkpoints=True, incremental_min_keys=10, on_start=seen.append)
    [counters] = seen
    counters.checkpoints.take_finished(all_=True)
    count, _, total, _ = counters.checkpoints.summary()
    assert count == 1  # one epoch
    files = [p for p in (tmp_path / "flowlib-state").rglob("*") if p.is_file()]
    file_bytes = sum(p.stat().st_size for p in files)
    assert file_bytes > 0
    assert file_bytes <= total <= file_bytes + len(files) * 4096  # + the records bytewax keeps
    assert counters.groups.state_keys() == {"count": 50_000}


def test_the_key_groups_of_a_run_without_recovery_are_watched_too() -> None:
    out: ListSink[Keyed[int, int]] = ListSink()
    flow = Flow("counting", dead_letters=ListSink(DeadLetter))
    nums = flow.source(ListSource(range(1000), int), name="nums")
    nums.key_by(lambda x: x % 300, key_type=int).process(Count(), name="count").sink(out)
    seen: list[Counters] = []
    run(flow, workers_per_process=2, on_start=seen.append)  # one logic per worker
    assert seen[0].groups.state_keys() == {"count": 300}
    assert seen[0].checkpoints.summary()[0] == 0  # nothing snapshotted without recovery
