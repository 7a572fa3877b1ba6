"""Running flows on bytewax: results, dead letters, counts, errors, workers, recovery."""

from __future__ import annotations

import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typing_extensions import override

from flowlib import (
    Context,
    DeadLetter,
    Flow,
    FlowBuildError,
    ListSink,
    ListSource,
    Processor,
    StateSchemaError,
)
from flowlib.engine import run
from operators.aggregate import Count, Fold, Keyed
from state_backends import MemoryBackend


class ParityError(ValueError):
    pass


def reject_odd(x: int) -> int:
    if x % 2:
        raise ParityError(f"odd: {x}")
    return x * 10


def test_stateless_steps_and_counts() -> None:
    flow = Flow("f", dead_letters=ListSink(DeadLetter))
    out = ListSink(int)
    nums = flow.source(ListSource(range(10), int, batch_size=3), name="nums")
    evens = nums.filter(lambda x: x % 2 == 0, name="evens")
    pairs = evens.flat_map(lambda x: [x, x + 100], name="pairs")
    pairs.merge(nums.map(lambda x: -x, name="neg"), name="both").sink(out, name="out")
    report = run(flow)
    assert sorted(out.items) == sorted(
        [0, 2, 4, 6, 8, 100, 102, 104, 106, 108] + [-x for x in range(10)]
    )
    assert (report.step("evens").records_in, report.step("evens").records_out) == (10, 5)
    assert report.step("evens").dropped == 5
    assert report.step("pairs").records_out == 10
    assert report.step("both").records_in == 20
    assert report.step("out").records_in == 20
    assert report.dead_letters == 0


def test_failing_events_become_dead_letters_and_the_run_goes_on() -> None:
    dead = ListSink(DeadLetter)
    flow = Flow("f", dead_letters=dead)
    out = ListSink(int)
    flow.source(ListSource(range(7), int, batch_size=2), name="nums").map(
        reject_odd, name="checked"
    ).sink(out)
    report = run(flow)
    assert sorted(out.items) == [0, 20, 40, 60]
    assert sorted(d.record for d in dead.items) == ["1", "3", "5"]
    assert {(d.step, d.error_type) for d in dead.items} == {("checked", "ParityError")}
    assert "odd: 3" in {d.error for d in dead.items}
    c = report.step("checked")
    assert (c.records_in, c.records_out, c.dead_letters) == (7, 4, 3)
    assert c.records_in == c.records_out + c.dead_letters
    assert report.step("dead_letters").records_in == 3


def test_fail_policy_raises_the_users_own_exception() -> None:
    flow = Flow("f", on_error="fail", dead_letters=ListSink(DeadLetter))
    flow.source(ListSource([2, 3], int), name="nums").map(reject_odd).sink(ListSink(int))
    with pytest.raises(ParityError, match="odd: 3") as err:
        run(flow)
    frames = [f.name for f in traceback.extract_tb(err.value.__traceback__)]
    assert "reject_odd" in frames
    assert err.value.__cause__ is None


class RunningMax(Processor[tuple[str, int], tuple[str, int], str, int]):
    @override
    def process(self, ctx: Context[str, int, tuple[str, int]], event: tuple[str, int]) -> None:
        best = max(ctx.state.get(event[1]), event[1])
        ctx.state.set(best)
        if event[1] < 0:
            raise ParityError("unlucky")

    @override
    def on_eof(self, ctx: Context[str, int, tuple[str, int]]) -> None:
        ctx.emit((ctx.key, ctx.state.get(0)))


def keyed_flow(out: ListSink[tuple[str, int]], dead: ListSink[DeadLetter]) -> Flow:
    flow = Flow("keyed", dead_letters=dead, max_key_groups=16)
    events = [(f"k{i % 37}", (i * 7919) % 1000) for i in range(5000)] + [("k1", -1)]
    src = flow.source(ListSource(events, tuple[str, int], batch_size=100), name="events")
    src.key_by(lambda e: e[0], key_type=str).process(RunningMax(), name="max").sink(out)
    return flow


@pytest.mark.parametrize("workers", [1, 2])
def test_keyed_state_per_key_and_dead_letters(workers: int) -> None:
    out, dead = ListSink[tuple[str, int]](), ListSink(DeadLetter)
    report = run(keyed_flow(out, dead), workers_per_process=workers)
    expected: dict[str, int] = {}
    for i in range(5000):
        k, v = f"k{i % 37}", (i * 7919) % 1000
        expected[k] = max(expected.get(k, v), v)
    assert dict(out.items) == expected and len(out.items) == 37
    assert [(d.step, d.error) for d in dead.items] == [("max", "unlucky")]
    assert report.step("max").records_in == 5001


def test_recovery_rerun_of_a_finished_input_emits_nothing_twice(tmp_path: Path) -> None:
    out, dead = ListSink[tuple[str, int]](), ListSink(DeadLetter)
    flow = keyed_flow(out, dead)
    run(flow, recovery_dir=tmp_path / "rec")
    first = sorted(out.items)
    assert (tmp_path / "rec" / "flowlib-manifest.json").exists()
    run(flow, recovery_dir=tmp_path / "rec")
    assert sorted(out.items) == first


def counting_flow(step: str, out: ListSink[Keyed[int, int]]) -> Flow:
    flow = Flow("counting", dead_letters=ListSink(DeadLetter))
    nums = flow.source(ListSource(range(100), int), name="nums")
    nums.key_by(lambda x: x % 3, key_type=int).process(Count(), name=step).sink(out)
    return flow


def test_renamed_stateful_step_is_refused_by_name(tmp_path: Path) -> None:
    run(counting_flow("count", ListSink()), recovery_dir=tmp_path)
    with pytest.raises(FlowBuildError) as err:
        run(counting_flow("count_v2", ListSink()), recovery_dir=tmp_path)
    assert "stateful step 'count' is no longer in the flow" in str(err.value)
    assert "stateful step 'count_v2' is new" in str(err.value)


def test_changed_state_type_is_refused_naming_the_step(tmp_path: Path) -> None:
    out = ListSink[Keyed[int, int]]()
    flow = Flow("counting", dead_letters=ListSink(DeadLetter))
    nums = flow.source(ListSource([*range(100)], int), name="nums")
    nums.key_by(lambda x: x % 3, key_type=int).process(Count(), name="count").sink(out)
    run(flow, recovery_dir=tmp_path, )
    flow2 = Flow("counting", dead_letters=ListSink(DeadLetter))
    nums2 = flow2.source(ListSource([*range(100)], int), name="nums")
    fold: Fold[int, int, str] = Fold(str, lambda acc, x: acc + str(x), state_type=str)
    nums2.key_by(lambda x: x % 3, key_type=int).process(fold, name="count").sink(ListSink())
    with pytest.raises(StateSchemaError, match="step 'count': checkpointed state"):
        run(flow2, recovery_dir=tmp_path)


def test_flow_without_sink_is_refused() -> None:
    flow = Flow("empty")
    flow.source(ListSource([1], int))
    with pytest.raises(FlowBuildError, match="has no sink"):
        run(flow)


class NoSnapshots(MemoryBackend[Any, Any]):
    """A backend that fails if asked to snapshot."""

    @override
    def snapshot(self) -> pa.Table:
        raise AssertionError("snapshot taken with recovery off")


def test_snapshots_cost_nothing_with_recovery_off(tmp_path: Path) -> None:
    def flow() -> tuple[Flow, ListSink[Keyed[int, int]]]:
        out = ListSink[Keyed[int, int]]()
        f = Flow("counting", dead_letters=ListSink(DeadLetter))
        nums = f.source(ListSource(range(1000), int, batch_size=10), name="nums")
        keyed = nums.key_by(lambda x: x % 5, key_type=int)
        keyed.process(Count(), name="count", state=NoSnapshots).sink(out)
        return f, out

    f, out = flow()
    run(f, snapshot_interval=timedelta(milliseconds=1))
    assert sorted((k.key, k.value) for k in out.items) == [(i, 200) for i in range(5)]
    f, _ = flow()
    with pytest.raises(AssertionError, match="snapshot taken with recovery off"):
        run(f, recovery_dir=tmp_path, snapshot_interval=timedelta(milliseconds=1))


def test_unhashable_keys_are_refused_at_build_and_dead_lettered_at_run() -> None:
    flow = Flow("lists", dead_letters=ListSink(DeadLetter))
    nums = flow.source(ListSource(range(30), int), name="nums")
    with pytest.raises(FlowBuildError, match=r"keyed by list\[int\], which is not hashable"):
        nums.key_by(lambda x: [x % 3], key_type=list[int]).process(Count(), name="c")
    dead = ListSink(DeadLetter)
    out = ListSink[Keyed[Any, int]]()
    flow = Flow("lists", dead_letters=dead)
    nums = flow.source(ListSource(range(30), int, batch_size=7), name="nums")
    # An undeclared key type cannot be checked at build: unhashable keys become dead letters.
    nums.key_by(lambda x: [x] if x == 4 else x % 3).process(Count(), name="c").sink(out)
    report = run(flow)
    assert sorted((k.key, k.value) for k in out.items) == [(0, 10), (1, 9), (2, 10)]
    assert [(d.step, d.record) for d in dead.items] == [("c.key_by", "4")]
    assert "key [4] is not hashable" in dead.items[0].error
    assert report.step("c").records_in == 30


def test_unhashable_keys_on_the_event_time_batch_path_are_dead_lettered() -> None:
    from operators.aggregations import Count as CountAgg
    from operators.windows import TumblingWindows, WindowResult

    dead = ListSink(DeadLetter)
    out = ListSink[WindowResult[Any, int]]()
    flow = Flow("timed_lists", dead_letters=dead)
    nums = flow.source(ListSource(range(30), int, batch_size=7), name="nums")
    timed = nums.with_event_time(lambda x: x, unit="s")
    keyed = timed.key_by(lambda x: [x] if x == 4 else x % 3)
    keyed.process(TumblingWindows(timedelta(seconds=100), CountAgg()), name="w").sink(out)
    report = run(flow)
    assert sorted((w.key, w.value) for w in out.items) == [(0, 10), (1, 9), (2, 10)]
    assert [(d.step, d.record) for d in dead.items] == [("w.key_by", "4")]
    assert "key [4] is not hashable" in dead.items[0].error
    assert report.step("w").records_in == 30
