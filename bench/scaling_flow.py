"""The flows of ``bench/scaling.py``, as a flowlib user script reading one file in byte ranges.

    flowlib run bench/scaling_flow.py [-p N] -- IN OUT [--splits N] [--key-groups N]
        [--batch-bytes N] [--job log_agg|log_agg_uncombined|log_agg_keyed|cpu]

``log_agg``: the shared workload, keyed by (10 s window, service, level), every window emitted
at end of input (as ``log_agg_flowlib.py``), with ``operators.aggregate.Aggregated`` and
``Multi(Count(), Sum(latency), Max(latency))``: each key's run of a batch is pre-aggregated
before the exchange, so only partial accumulators cross between processes.
``log_agg_uncombined``: the same operator with ``combine=False`` (every event crosses).
``log_agg_keyed``: the hand-written per-event processor ``WindowAgg`` (every event crosses).
``cpu``: the same events through a CPU-heavy typed ``map`` (a few thousand floating-point
operations per event) before a small keyed sum, so the work per event outweighs what crosses
between processes.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

from typing_extensions import override

from flowlib import Context, Flow, JsonLinesSink, JsonLinesSource, Processor
from flowlib.connectors.files import BATCH_BYTES
from operators.aggregate import Aggregated, Keyed
from operators.aggregations import Count, Max, Multi, Sum

WINDOW_MS = 10_000
Key = tuple[int, str, str]


@dataclass(frozen=True, slots=True)
class Event:
    ts: int
    host: str
    level: str
    service: str
    msg: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class WindowResult:
    window_start_ms: int
    service: str
    level: str
    count: int
    sum: float
    max: float


@dataclass(slots=True)
class Acc:
    count: int
    sum: float
    max: float


@dataclass(frozen=True, slots=True)
class Scored:
    service: str
    score: float


@dataclass(frozen=True, slots=True)
class ServiceScore:
    service: str
    count: int
    score: float


class WindowAgg(Processor[Event, WindowResult, Key, Acc]):
    """count / sum / max of ``latency_ms`` per key; one result per key at end of input."""

    @override
    def process(self, ctx: Context[Key, Acc, WindowResult], event: Event) -> None:
        lat = event.latency_ms
        acc = ctx.state.get_optional()
        if acc is None:
            ctx.state.set(Acc(1, lat, lat))
            return
        acc.count += 1
        acc.sum += lat
        if lat > acc.max:
            acc.max = lat
        ctx.state.set(acc)

    @override
    def on_eof(self, ctx: Context[Key, Acc, WindowResult]) -> None:
        acc = ctx.state.get_optional()
        if acc is not None:
            start, service, level = ctx.key
            ctx.emit(WindowResult(start, service, level, acc.count, acc.sum, acc.max))


class ScoreSum(Processor[Scored, ServiceScore, str, Acc]):
    @override
    def process(self, ctx: Context[str, Acc, ServiceScore], event: Scored) -> None:
        acc = ctx.state.get_optional()
        if acc is None:
            ctx.state.set(Acc(1, event.score, event.score))
            return
        acc.count += 1
        acc.sum += event.score

    @override
    def on_eof(self, ctx: Context[str, Acc, ServiceScore]) -> None:
        acc = ctx.state.get_optional()
        if acc is not None:
            ctx.emit(ServiceScore(ctx.key, acc.count, acc.sum))


def score(e: Event) -> Scored:
    """A deterministic, CPU-heavy function of the event (stands in for parsing, enrichment)."""
    x = e.latency_ms
    for i in range(1, 200):
        x = math.sin(x + i) * 100.0
    return Scored(e.service, x)


def window_key(e: Event) -> Key:
    return (e.ts - e.ts % WINDOW_MS, e.service, e.level)


def latency(e: Event) -> float:
    return e.latency_ms


def window_result(k: Keyed[Key, tuple[int, float, float]]) -> WindowResult:
    (start, service, level), (count, total, top) = k.key, k.value
    return WindowResult(start, service, level, count, total, top)


def service_key(s: Scored) -> str:
    return s.service


def build(src: str, dst: str, splits: int, job: str, key_groups: int = 128,
          batch_bytes: int = BATCH_BYTES) -> Flow:
    flow = Flow(f"scaling_{job}", max_key_groups=key_groups)
    events = flow.source(JsonLinesSource(src, Event, splits=splits, batch_bytes=batch_bytes),
                         name="events")
    if job == "cpu":
        scored = events.map(score, name="score")
        scored.key_by(service_key).process(ScoreSum(), name="sum").sink(
            JsonLinesSink(dst, ServiceScore), name="out")
    elif job == "log_agg_keyed":
        events.key_by(window_key).process(WindowAgg(), name="window_agg").sink(
            JsonLinesSink(dst, WindowResult), name="out")
    else:
        # One extraction of latency_ms shared by Sum and Max (the same function object).
        stats = Multi(Count(), Sum(latency), Max(latency))
        events.key_by(window_key).process(
            Aggregated(stats, combine=job == "log_agg"), name="window_agg"
        ).map(window_result, name="result").sink(JsonLinesSink(dst, WindowResult), name="out")
    return flow


_p = argparse.ArgumentParser(prog="scaling_flow.py")
_p.add_argument("src")
_p.add_argument("dst")
_p.add_argument("--splits", type=int, default=1)
_p.add_argument("--job", choices=("log_agg", "log_agg_uncombined", "log_agg_keyed", "cpu"),
                default="log_agg")
# Fewer key groups make fewer, larger items cross between processes (a diagnostic: each item
# costs a fixed overhead in bytewax's exchange); 128 is flowlib's default.
_p.add_argument("--key-groups", type=int, default=128)
# Larger source batches make fewer batches, hence fewer items and progress updates between the
# processes (a diagnostic too); flowlib's default is 512 KiB.
_p.add_argument("--batch-bytes", type=int, default=BATCH_BYTES)
_args = _p.parse_args(sys.argv[1:])
flow = build(_args.src, _args.dst, _args.splits, _args.job, _args.key_groups, _args.batch_bytes)
