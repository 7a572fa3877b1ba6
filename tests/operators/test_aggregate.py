"""``Aggregated``: a keyed fold by an ``Aggregate``, combined before the exchange or not.

Data: LogHub's HPC sample (2,000 real records, twice), in small batches so that every key's
state merges many partials.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowlib import DeadLetter, Flow, ListSink, ListSource
from flowlib.checkpoint import read_state
from flowlib.engine import RunReport, run
from operators.aggregate import Aggregated, Keyed
from operators.aggregations import Collect, Count, First, Max, Multi, Sum
from operators.loghub import HpcLine, parse_hpc
from tests.examples.cli_helpers import LOGHUB

RECORDS = [parse_hpc(line) for line in (LOGHUB / "HPC" / "HPC_2k.log").read_text().splitlines()]
EVENTS = RECORDS * 2
Key = tuple[str, str]
Stats = tuple[int, float, float, int, list[int]]


class NoScoreError(ValueError):
    pass


def score(r: HpcLine) -> float:
    return r.log_id / 7 + r.flag


def strict_score(r: HpcLine) -> float:
    if r.flag < 0:
        raise NoScoreError(f"log {r.log_id}: flag {r.flag} has no score")
    return score(r)


def log_id(r: HpcLine) -> float:
    return r.log_id


def log_id_int(r: HpcLine) -> int:
    return r.log_id


def key(r: HpcLine) -> Key:
    return (r.component, r.state)


def aggregate(flow_name: str, *, combine: bool, strict: bool = False, batch: int = 37,
              recovery: Path | None = None) -> tuple[dict[Key, Stats], list[DeadLetter],
                                                      RunReport]:
    """Per key: count, sum of the score, max log id, first log id, every log id in order."""
    dead: ListSink[DeadLetter] = ListSink()
    out: ListSink[Keyed[Key, Stats]] = ListSink()
    flow = Flow(flow_name, dead_letters=dead)
    stats = Multi(Count(), Sum(strict_score if strict else score), Max(log_id),
                  First(int, log_id_int), Collect(int, log_id_int))
    flow.source(ListSource(EVENTS, HpcLine, batch_size=batch)).key_by(key).process(
        Aggregated(stats, combine=combine), name="agg").sink(out)
    report = run(flow, recovery_dir=recovery)
    return {k.key: k.value for k in out.items}, dead.items, report


def reference(records: list[HpcLine]) -> dict[Key, Stats]:
    """The same statistics by a plain loop, event by event."""
    acc: dict[Key, Any] = {}
    for r in records:
        c, s, m, f, ids = acc.get(key(r), (0, 0.0, -math.inf, r.log_id, []))
        acc[key(r)] = (c + 1, s + score(r), max(m, r.log_id), f, [*ids, r.log_id])
    return acc


def assert_equal_up_to_sum_rounding(got: dict[Key, Stats], want: dict[Key, Stats]) -> None:
    assert got.keys() == want.keys()
    for k, (count, total, top, first, ids) in want.items():
        g = got[k]
        # Exact but for the sum: a merged partial adds a run's subtotal, not each value.
        assert (g[0], g[2], g[3], g[4]) == (count, top, first, ids), k
        assert math.isclose(g[1], total, rel_tol=1e-12), (k, g[1], total)


def test_combined_and_uncombined_runs_give_the_plain_loops_results() -> None:
    want = reference(EVENTS)
    uncombined, dead, _ = aggregate("uncombined", combine=False)
    combined, dead2, report = aggregate("combined", combine=True)
    assert not dead and not dead2
    # Event by event (and add_range over a run), the sum adds left to right: bit for bit.
    assert uncombined == want
    assert_equal_up_to_sum_rounding(combined, want)
    agg = report.step("agg")
    assert (agg.records_in, agg.records_out, agg.dead_letters) == (len(EVENTS), len(want), 0)


def test_bad_events_dead_letter_alone_and_are_counted_once() -> None:
    bad = [r for r in EVENTS if r.flag < 0]
    assert 0 < len(bad) < len(EVENTS)
    want = reference([r for r in EVENTS if r.flag >= 0])
    for combine in (True, False):
        got, dead, report = aggregate(f"strict_{combine}", combine=combine, strict=True)
        assert_equal_up_to_sum_rounding(got, want)
        # Exactly the bad records, each once, with the usual error.
        assert sorted(d.record for d in dead) == sorted(
            DeadLetter.from_error("agg", NoScoreError(), r).record for r in bad)
        assert sorted(d.error for d in dead) == sorted(
            f"log {r.log_id}: flag -1 has no score" for r in bad)
        assert {(d.step, d.error_type) for d in dead} == {("agg", "NoScoreError")}
        agg = report.step("agg")
        assert (agg.records_in, agg.records_out, agg.dead_letters) == (
            len(EVENTS), len(want), len(bad))


def test_checkpointed_state_is_the_accumulator(tmp_path: Path) -> None:
    """State is the aggregate's accumulator, typed from its ``acc_type`` (Arrow schema)."""
    got, _, _ = aggregate("checkpointed", combine=True, recovery=tmp_path / "rec")
    table = read_state(tmp_path / "rec", "agg")
    value = table.schema.field("value").type
    assert [str(value.field(i).type) for i in range(4)] == [
        "int64", "double", "double", "struct<value: int64, time_us: int64>"]
    saved = {(r["key"]["f0"], r["key"]["f1"]): r["value"] for r in table.to_pylist()}
    assert saved.keys() == got.keys()
    for k, v in saved.items():
        assert (v["f0"], v["f1"], v["f2"], v["f3"]["value"], v["f4"]) == got[k], k


def test_event_time_steps_run_event_by_event() -> None:
    """No combining on event-time steps (lateness is decided per event): same results."""

    class Spy(Aggregated[HpcLine, Key, Any, Any]):
        partials = 0

        def partial(self, key: Key, events: Any) -> Any:
            Spy.partials += 1
            return super().partial(key, events)

    out: ListSink[Keyed[Key, Any]] = ListSink()
    flow = Flow("timed", dead_letters=ListSink(DeadLetter))
    # Out of order by months in the sample: a delay that makes no record late.
    stream = flow.source(ListSource(EVENTS, HpcLine, batch_size=37)).with_event_time(
        lambda r: r.ts, max_out_of_orderness=timedelta(days=3650))
    stream.key_by(key).process(Spy(Multi(Count(), Max(log_id))), name="agg").sink(out)
    run(flow)
    assert Spy.partials == 0
    want = reference(EVENTS)
    assert {k.key: k.value for k in out.items} == {k: (v[0], v[2]) for k, v in want.items()}


@pytest.mark.parametrize("combine", [True, False])
def test_aggregated_alone_reads_its_state_type_from_the_aggregate(combine: bool) -> None:
    agg: Aggregated[HpcLine, Key, int, int] = Aggregated(Count(), combine=combine)
    assert agg.state_type is int and agg.combines is combine
