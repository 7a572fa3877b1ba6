"""A combined aggregation over LogHub's HPC sample, for ``test_combine`` (run by ``flowlib run``).

Per (component, state): count, sum of a score, max and min of the log id, mean message length,
with ``operators.aggregate.Aggregated``. The score of a record with flag -1 raises (18 such
records per copy of the sample), so those records, and only those, dead-letter; lines that do
not parse dead-letter at the source.

    flowlib run tests/flowlib/engine/combine_flow.py [-p N] -- LOG OUT_DIR [--splits N]
        [--no-combine] [--crash-after N --pause-every M]

``--crash-after N`` ends the process abruptly (``os._exit``, like ``kill -9``) at the N-th line.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from flowlib import DeadLetter, Flow, JsonLinesSink, TextLines
from flowlib.testing import CrashAfter
from operators.aggregate import Aggregated, Keyed
from operators.aggregations import Count, Max, Mean, Min, Multi, Sum
from operators.loghub import HpcLine, parse_hpc

Key = tuple[str, str]


class NoScoreError(ValueError):
    """The record has no score (flag -1)."""


@dataclass(frozen=True)
class Row:
    component: str
    state: str
    count: int
    score: float
    max_id: float
    min_id: float
    mean_len: float


def score(r: HpcLine) -> float:
    if r.flag < 0:
        raise NoScoreError(f"log {r.log_id}: flag {r.flag} has no score")
    return r.log_id / 7 + r.flag


def log_id(r: HpcLine) -> float:
    return r.log_id


def message_length(r: HpcLine) -> float:
    return len(r.message)


def key(r: HpcLine) -> Key:
    return (r.component, r.state)


def row(k: Keyed[Key, tuple[int, float, float, float, float]]) -> Row:
    (component, state), (count, total, top, bottom, mean) = k.key, k.value
    return Row(component, state, count, total, top, bottom, mean)


def build(argv: list[str]) -> Flow:
    p = argparse.ArgumentParser(prog="combine_flow")
    p.add_argument("log", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--splits", type=int, default=1)
    p.add_argument("--no-combine", action="store_true")
    p.add_argument("--crash-after", type=int)
    p.add_argument("--pause-every", type=int, default=0)
    args = p.parse_args(argv)
    flow = Flow("combine", dead_letters=JsonLinesSink(args.out / "dead_letters.jsonl", DeadLetter))
    parse = CrashAfter(parse_hpc, after=args.crash_after, pause_every=args.pause_every)
    # Small batches: many partials per key, and checkpoints between batches.
    lines = flow.source(
        TextLines(args.log, parse=parse, splits=args.splits, batch_bytes=16 * 1024), name="parse"
    )
    stats = Multi(Count(), Sum(score), Max(log_id), Min(log_id), Mean(message_length))
    lines.key_by(key).process(Aggregated(stats, combine=not args.no_combine), name="agg").map(
        row, name="row"
    ).sink(JsonLinesSink(args.out / "rows.jsonl", Row), name="out")
    return flow


def flow() -> Flow:
    """The flow, built when ``flowlib`` loads the script (not when pytest imports it)."""
    return build(sys.argv[1:])
