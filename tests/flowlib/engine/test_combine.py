"""Combining before the exchange: partials instead of events cross to the key groups.

In process: what reaches the key group, the fallback of a run whose partial fails, counts.
Through ``flowlib run`` (``combine_flow.py``, LogHub's HPC sample five times with garbage lines):
``-p 2`` against ``-p 1`` with and without combining, and a crash then resume.
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import override

from flowlib import Combinable, Context, DeadLetter, Flow, ListSink, ListSource
from flowlib.codecs._wire import WireRuns, wire_for
from flowlib.engine import run
from flowlib.engine._combine import Combined, combine_runs
from flowlib.engine._group import GroupOutput, KeyGroup, KeyGroupSpec
from flowlib.testing import ProcessorHarness
from state_backends.memory import MemoryBackend
from tests.examples.cli_helpers import LOGHUB, ROOT, flowlib_command, run_cli, step_counts

SCRIPT = Path(__file__).with_name("combine_flow.py")
COPIES = 5
BAD_PER_COPY = 18  # HPC records with flag -1: their score raises
GARBAGE = COPIES  # one line that does not parse per copy


class Total(Combinable[int, tuple[str, int], str, int, int]):
    """Sums ints per key; counts which hooks the engine called. ``13`` has no partial (its
    run must then arrive as events) and ``process`` refuses it."""

    state_type = int

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"process": 0, "partial": 0, "merge": 0}

    @override
    def process(self, ctx: Context[str, int, tuple[str, int]], event: int) -> None:
        self.calls["process"] += 1
        if event == 13:
            raise ValueError("unlucky 13")
        ctx.state.set(ctx.state.get(0) + event)

    @override
    def partial(self, key: str, events: Sequence[int]) -> int:
        self.calls["partial"] += 1
        if 13 in events:
            raise ValueError("no partial with 13")
        return sum(events)

    @override
    def merge_partial(self, ctx: Context[str, int, tuple[str, int]], partial: int) -> None:
        self.calls["merge"] += 1
        ctx.state.set(ctx.state.get(0) + partial)

    @override
    def on_eof(self, ctx: Context[str, int, tuple[str, int]]) -> None:
        ctx.emit((ctx.key, ctx.state.get(0)))


def parity(n: int) -> str:
    return "odd" if n % 2 else "even"


def run_total(numbers: list[int], total: Total) -> tuple[list[Any], list[DeadLetter], Any]:
    out: ListSink[tuple[str, int]] = ListSink()
    dead: ListSink[DeadLetter] = ListSink()
    flow = Flow("totals", dead_letters=dead)
    flow.source(ListSource(numbers, int, batch_size=10)).key_by(parity).process(
        total, name="total").sink(out)
    report = run(flow)
    return sorted(out.items), dead.items, report.step("total")


def test_only_partials_reach_the_key_groups_and_events_are_counted() -> None:
    numbers = [n for n in range(100) if n != 13]
    total = Total()
    got, dead, counts = run_total(numbers, total)
    assert got == [("even", sum(range(0, 100, 2))), ("odd", sum(range(1, 100, 2)) - 13)]
    assert not dead
    # 10 batches of 2 keys: one partial per key and batch, no event handled one by one.
    assert total.calls == {"process": 0, "partial": 20, "merge": 20}
    assert (counts.records_in, counts.records_out, counts.dead_letters) == (99, 2, 0)


def test_a_run_whose_partial_fails_arrives_as_events() -> None:
    total = Total()
    got, dead, counts = run_total(list(range(100)), total)
    # 13 is in the 2nd batch's odd run: those 5 events go through process, 13 dead-letters.
    assert got == [("even", sum(range(0, 100, 2))), ("odd", sum(range(1, 100, 2)) - 13)]
    assert total.calls == {"process": 5, "partial": 20, "merge": 19}
    assert [(d.step, d.error_type, d.error, d.record) for d in dead] == [
        ("total", "ValueError", "unlucky 13", "13")]
    assert (counts.records_in, counts.records_out, counts.dead_letters) == (100, 2, 1)


def test_on_error_fail_raises_the_bad_events_own_error() -> None:
    flow = Flow("totals", on_error="fail", dead_letters=ListSink(DeadLetter))
    flow.source(ListSource(list(range(100)), int, batch_size=10)).key_by(parity).process(
        Total(), name="total").sink(ListSink())
    with pytest.raises(ValueError, match="unlucky 13"):  # from process, not from partial
        run(flow)


def test_without_combining_every_event_is_processed() -> None:
    total = Total()
    total.combines = False
    got, _, counts = run_total(list(range(100)), total)
    assert got == [("even", sum(range(0, 100, 2))), ("odd", sum(range(1, 100, 2)) - 13)]
    assert total.calls == {"process": 100, "partial": 0, "merge": 0}
    assert (counts.records_in, counts.dead_letters) == (100, 1)


@dataclass(frozen=True)
class Point:
    n: int


def test_combined_items_pickle_with_their_raw_runs_on_the_wire() -> None:
    wire = wire_for(Point)
    assert wire is not None
    combined = combine_runs(Total(), [("odd", [1, 13, 3]), ("even", [2, 4])], wire)
    assert combined.partials == [("even", 6)] and combined.events == 2
    assert combined.raw == [("odd", [1, 13, 3])]
    assert type(combined.raw) is WireRuns  # events that may leave the process: fast pickling
    copy = pickle.loads(pickle.dumps(combined))
    assert (copy.partials, copy.raw, copy.events) == ([("even", 6)], [("odd", [1, 13, 3])], 2)
    # bytewax pickles an item twice: encoded once, then reused (an item never changes).
    first = pickle.dumps(combined)
    combined.partials.append(("never", 0))
    assert pickle.dumps(combined) == first


class BadMerge(Total):
    @override
    def merge_partial(self, ctx: Context[str, int, tuple[str, int]], partial: int) -> None:
        raise RuntimeError(f"cannot merge {partial}")


def group(processor: Total, *, fail: bool) -> KeyGroup:
    spec = KeyGroupSpec("total", processor, str, int, MemoryBackend, None, late_wired=False,
                        fail=fail, recovery=False)
    return KeyGroup(spec, None)


def test_a_failing_merge_dead_letters_the_partial_or_fails_the_run() -> None:
    res: GroupOutput = group(BadMerge(), fail=False).process([Combined([("odd", 9)], [], 3)])
    assert res.seen == 3
    assert [(d.error_type, d.error, json.loads(d.record)) for d in res.dead] == [
        ("RuntimeError", "cannot merge 9", {"key": "odd", "partial": 9})]
    with pytest.raises(RuntimeError, match="cannot merge 9"):
        group(BadMerge(), fail=True).process([Combined([("odd", 9)], [], 3)])


def test_the_key_group_merges_partials_then_handles_raw_runs() -> None:
    g = group(Total(), fail=False)
    res = g.process([Combined([("odd", 9), ("even", 4)], [("odd", [13, 5])], 3)])
    assert (res.seen, [d.record for d in res.dead]) == (5, ["13"])
    assert sorted(g.end_of_input().out) == [("even", 4), ("odd", 14)]


# --- through flowlib run -----------------------------------------------------------------


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = (LOGHUB / "HPC" / "HPC_2k.log").read_text().splitlines()
    path = tmp_path_factory.mktemp("combine") / "hpc.log"
    with path.open("w") as f:
        for c in range(COPIES):
            f.write("\n".join(lines) + f"\nnot an HPC line {c}\n")
    return path


def outputs(out: Path) -> tuple[dict[tuple[str, str], dict[str, Any]], list[str]]:
    rows = [json.loads(x) for x in (out / "rows.jsonl").read_text().splitlines()]
    dead = [json.loads(x) for x in (out / "dead_letters.jsonl").read_text().splitlines()]
    return {(r["component"], r["state"]): r for r in rows}, sorted(d["record"] for d in dead)



def assert_same_rows(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]]) -> None:
    assert got.keys() == want.keys()
    for k, w in want.items():
        g = got[k]
        assert (g["count"], g["max_id"], g["min_id"]) == (w["count"], w["max_id"], w["min_id"])
        # Sums (and the mean's) add partial subtotals: equal up to rounding only.
        for f in ("score", "mean_len"):
            assert math.isclose(g[f], w[f], rel_tol=1e-12), (k, f, g[f], w[f])


@pytest.fixture(scope="module")
def uncombined(log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uncombined")
    run_cli("run", SCRIPT, "-q", "--", log, out, "--no-combine")
    return out


@pytest.mark.parametrize("procs", [1, 2])
def test_processes_give_the_uncombined_result_and_exact_counts(
    log: Path, uncombined: Path, tmp_path: Path, procs: int
) -> None:
    stderr = run_cli("run", SCRIPT, "-p", str(procs), "--", log, tmp_path, "--splits",
                     str(procs), timeout=120)
    rows, dead = outputs(tmp_path)
    want_rows, want_dead = outputs(uncombined)
    assert_same_rows(rows, want_rows)
    assert dead == want_dead  # the same records, each once
    assert len(dead) == COPIES * BAD_PER_COPY + GARBAGE
    events = COPIES * 2000
    assert step_counts(stderr, "agg") == (events, len(rows), COPIES * BAD_PER_COPY, 0)
    assert sum(r["count"] for r in rows.values()) == events - COPIES * BAD_PER_COPY


def test_crash_and_resume_gives_the_uninterrupted_result(
    log: Path, uncombined: Path, tmp_path: Path
) -> None:
    rec, out = tmp_path / "rec", tmp_path / "out"
    proc = subprocess.run(
        [*flowlib_command(), "run", str(SCRIPT), "-q", "--recovery", str(rec),
         "--snapshot-interval", "0.05", "--", str(log), str(out), "--crash-after", "6000",
         "--pause-every", "300"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 137, proc.stderr
    stderr = run_cli("run", SCRIPT, "--recovery", rec, "--", log, out, timeout=120)
    parsed = step_counts(stderr, "parse")[0]
    assert 0 < parsed < COPIES * 2001, "the second run resumed from a checkpoint"
    rows, dead = outputs(out)
    want_rows, want_dead = outputs(uncombined)
    assert_same_rows(rows, want_rows)
    assert dead == want_dead  # no dead letter lost or written twice


def test_the_processor_harness_combines_as_the_engine_does() -> None:
    total = Total()
    h = ProcessorHarness(total, key=parity)
    h.push_many([1, 2, 3, 4])
    h.push_many([5, 13, 6])
    assert sorted(h.end_of_input()) == [("even", 12), ("odd", 9)]
    assert [(d.error, d.record) for d in h.dead_letters] == [("unlucky 13", "13")]
    assert total.calls == {"process": 2, "partial": 4, "merge": 3}
