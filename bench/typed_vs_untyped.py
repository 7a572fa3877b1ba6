#!/usr/bin/env python3
"""The same flowlib pipeline on typed events and on untyped dicts, alternately, in fresh processes.

    python bench/typed_vs_untyped.py [--events N] [--rounds R] [--dataset log|metrics]

Two jobs, each written once per event representation with the same steps (source, key_by,
a keyed aggregate, sink) and the same processor code (attribute vs item access):

* ``log``: the shared log_agg workload (``../shared/bench``): count / sum / max of
  ``latency_ms`` per (10 s window, service, level). Output checked with the shared ``check.py``.
* ``metrics``: N float64 metric events ``{"series": "s<i % 100>", "ts": ms, "value": float}``
  (full-precision floats, generated here): count / sum / min / max / last ts per series.

Representations: ``dataclass`` (frozen, slots; flowlib's inferred codec, bulk ``decode_lines``),
``struct`` (a ``msgspec.Struct`` with ``gc=False``, same fields), ``struct_fields`` (log only:
a Struct declaring just the four fields the job reads, so the decoder skips the others), and
``dict`` (``TextLines`` with a parse function calling ``orjson.loads``; dict access).

Each run is a fresh process calling ``flowlib.engine.run`` (the engine ``flowlib run`` uses),
timed inside the child around the run (start-up and imports are identical for all variants and
left out; the parent's wall time is recorded too). Throughput ratios use the run's CPU time
(``time.process_time``): on a quiet machine it equals the wall time of this single-threaded run,
and it is much less disturbed by other load; wall-time ratios are recorded beside them.

GC: the child counts collections and seconds in GC during the run (``gc.callbacks``). A flowlib
run freezes the heap and raises the young-generation threshold to 100,000 while events live for
one batch (a few thousand), so events never trigger a collection there: the run's collections
come from the state, whatever the events are. The representation's own pressure is measured
apart: the source's decoding of the first 200,000 events alone, in its batches, under CPython's
default thresholds (collections per 1M events), and the memory blocks a decoded event holds
(``sys.getallocatedblocks`` over the first 100,000 lines).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec
import orjson
from typing_extensions import override

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import (
    WORK,
    GcWatch,
    Target,
    child_json,
    generated,
    median,
    now,
    python,
    ratio,
    warm,
    write_result,
)

from flowlib import Context, Flow, JsonLinesSink, JsonLinesSource, Processor, TextLines
from flowlib.connectors.files import BATCH_BYTES
from flowlib.dead_letter import DeadLetter
from flowlib.engine import run

NAME = "typed_vs_untyped"
DEFAULT_EVENTS = 1_000_000
WINDOW_MS = 10_000
VARIANTS = {"log": ("dataclass", "struct", "struct_fields", "dict"),
            "metrics": ("dataclass", "struct", "dict")}
TYPED_HEADLINE = "struct"


def shared_dir() -> Path:
    import os

    env = os.environ.get("FLOWLIB_SHARED_BENCH")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2] / "shared" / "bench"


# --- event types ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogEvent:
    ts: int
    host: str
    level: str
    service: str
    msg: str
    latency_ms: float


class LogEventS(msgspec.Struct, frozen=True, gc=False):
    ts: int
    host: str
    level: str
    service: str
    msg: str
    latency_ms: float


class LogFieldsS(msgspec.Struct, frozen=True, gc=False):
    """Only what the job reads, as precisely as known: the decoder skips ``host`` and ``msg``
    without building them, and a ``level`` is one of four constant strings, not a new one."""

    ts: int
    level: Literal["INFO", "WARN", "ERROR", "DEBUG"]
    service: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Metric:
    series: str
    ts: int
    value: float


class MetricS(msgspec.Struct, frozen=True, gc=False):
    series: str
    ts: int
    value: float


class HasLatency(Protocol):
    @property
    def latency_ms(self) -> float: ...


class HasValue(Protocol):
    @property
    def ts(self) -> int: ...
    @property
    def value(self) -> float: ...


E = TypeVar("E", bound=HasLatency)
M = TypeVar("M", bound=HasValue)
Key = tuple[int, str, str]


@dataclass(frozen=True, slots=True)
class WindowResult:
    window_start_ms: int
    service: str
    level: str
    count: int
    sum: float
    max: float


@dataclass(frozen=True, slots=True)
class SeriesResult:
    series: str
    count: int
    sum: float
    min: float
    max: float
    last_ts: int


@dataclass(slots=True)
class Acc:
    count: int
    sum: float
    max: float


@dataclass(slots=True)
class SeriesAcc:
    count: int
    sum: float
    min: float
    max: float
    last_ts: int


# --- processors: the same code, attribute access vs item access ---------------------------


class LogAgg(Processor[E, WindowResult, Key, Acc], Generic[E]):
    @override
    def process(self, ctx: Context[Key, Acc, WindowResult], event: E) -> None:
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


class LogAggDict(Processor[dict[str, Any], WindowResult, Key, Acc]):
    @override
    def process(self, ctx: Context[Key, Acc, WindowResult], event: dict[str, Any]) -> None:
        lat = event["latency_ms"]
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


class SeriesAgg(Processor[M, SeriesResult, str, SeriesAcc], Generic[M]):
    @override
    def process(self, ctx: Context[str, SeriesAcc, SeriesResult], event: M) -> None:
        v = event.value
        acc = ctx.state.get_optional()
        if acc is None:
            ctx.state.set(SeriesAcc(1, v, v, v, event.ts))
            return
        acc.count += 1
        acc.sum += v
        if v < acc.min:
            acc.min = v
        if v > acc.max:
            acc.max = v
        acc.last_ts = event.ts
        ctx.state.set(acc)

    @override
    def on_eof(self, ctx: Context[str, SeriesAcc, SeriesResult]) -> None:
        a = ctx.state.get_optional()
        if a is not None:
            ctx.emit(SeriesResult(ctx.key, a.count, a.sum, a.min, a.max, a.last_ts))


class SeriesAggDict(Processor[dict[str, Any], SeriesResult, str, SeriesAcc]):
    @override
    def process(self, ctx: Context[str, SeriesAcc, SeriesResult], event: dict[str, Any]) -> None:
        v = event["value"]
        acc = ctx.state.get_optional()
        if acc is None:
            ctx.state.set(SeriesAcc(1, v, v, v, event["ts"]))
            return
        acc.count += 1
        acc.sum += v
        if v < acc.min:
            acc.min = v
        if v > acc.max:
            acc.max = v
        acc.last_ts = event["ts"]
        ctx.state.set(acc)

    @override
    def on_eof(self, ctx: Context[str, SeriesAcc, SeriesResult]) -> None:
        a = ctx.state.get_optional()
        if a is not None:
            ctx.emit(SeriesResult(ctx.key, a.count, a.sum, a.min, a.max, a.last_ts))


def parse_dict(line: str) -> dict[str, Any]:
    """The untyped source's parse function."""
    d: dict[str, Any] = orjson.loads(line)
    return d


# --- flows ----------------------------------------------------------------------------------

LOG_TYPES: dict[str, type[Any]] = {
    "dataclass": LogEvent, "struct": LogEventS, "struct_fields": LogFieldsS}
METRIC_TYPES: dict[str, type[Any]] = {"dataclass": Metric, "struct": MetricS}


def build(dataset: str, variant: str, src: str, dst: str) -> Flow:
    """The flow of ``dataset`` on events of representation ``variant``."""
    flow = Flow(f"{dataset}_{variant}", dead_letters=JsonLinesSink(dst + ".dead", DeadLetter))
    if dataset == "log":
        if variant == "dict":
            d = flow.source(TextLines(src, parse=parse_dict), name="events")
            d.key_by(lambda e: (e["ts"] - e["ts"] % WINDOW_MS, e["service"], e["level"]),
                     key_type=tuple[int, str, str]).process(LogAggDict(), name="agg").sink(
                JsonLinesSink(dst, WindowResult), name="out")
        else:
            tp = LOG_TYPES[variant]
            t = flow.source(JsonLinesSource(src, tp), name="events")
            t.key_by(lambda e: (e.ts - e.ts % WINDOW_MS, e.service, e.level),
                     key_type=tuple[int, str, str]).process(
                LogAgg[tp](), name="agg").sink(  # type: ignore[valid-type]
                JsonLinesSink(dst, WindowResult), name="out")
    elif variant == "dict":
        d = flow.source(TextLines(src, parse=parse_dict), name="events")
        d.key_by(lambda e: e["series"], key_type=str).process(
            SeriesAggDict(), name="agg").sink(JsonLinesSink(dst, SeriesResult), name="out")
    else:
        tp = METRIC_TYPES[variant]
        t = flow.source(JsonLinesSource(src, tp), name="events")
        t.key_by(lambda e: e.series, key_type=str).process(
            SeriesAgg[tp](), name="agg").sink(  # type: ignore[valid-type]
            JsonLinesSink(dst, SeriesResult), name="out")
    return flow


def decoded_blocks(dataset: str, variant: str, src: str, n: int = 100_000) -> float:
    """Memory blocks one decoded event holds, as the source decodes it (bulk for typed)."""
    with open(src, "rb") as f:
        lines = [f.readline() for _ in range(n)]
    lines = [x for x in lines if x]
    if variant == "dict":
        conv = [x.rstrip(b"\n") for x in lines]
        gc.collect()
        before = sys.getallocatedblocks()
        held: list[Any] = [parse_dict(x.decode("utf-8")) for x in conv]
    else:
        from flowlib.codecs import codec_for

        tp = (LOG_TYPES if dataset == "log" else METRIC_TYPES)[variant]
        data = b"".join(lines)
        codec = codec_for(tp)
        codec.decode_lines(data[:1000].rsplit(b"\n", 1)[0])  # warm the decoder's caches
        gc.collect()
        before = sys.getallocatedblocks()
        held = codec.decode_lines(data)
    blocks = sys.getallocatedblocks() - before - 1  # the list itself
    assert len(held) == len(lines)
    return blocks / len(held)


def decode_gc(dataset: str, variant: str, src: str, n: int = 200_000) -> dict[str, Any]:
    """The collector's work while the source's decoding of ``n`` events runs alone, in batches
    as the source reads them, each dropped before the next, under CPython's default thresholds
    (a flowlib run raises them; this isolates what the events' representation costs)."""
    if variant == "dict":
        def convert(lines: list[bytes]) -> list[Any]:
            return [parse_dict(x.rstrip(b"\n").decode("utf-8")) for x in lines]
    else:
        from flowlib.codecs import codec_for

        codec = codec_for((LOG_TYPES if dataset == "log" else METRIC_TYPES)[variant])

        def convert(lines: list[bytes]) -> list[Any]:
            return codec.decode_lines(b"".join(lines))
    old = gc.get_threshold()
    gc.collect()
    gc.set_threshold(700, 10, 10)
    done = 0
    try:
        with open(src, "rb") as f, GcWatch() as watch:
            while done < n and (lines := f.readlines(BATCH_BYTES)):
                done += len(convert(lines))
    finally:
        gc.set_threshold(*old)
    return {"decoded": done, "collections_per_1m": sum(watch.collections) * 1e6 / done,
            "gc_seconds_per_1m": watch.seconds * 1e6 / done}


def child(dataset: str, variant: str, src: str, dst: str) -> None:
    flow = build(dataset, variant, src, dst)
    blocks = decoded_blocks(dataset, variant, src)
    decoding = decode_gc(dataset, variant, src)
    with GcWatch() as watch:
        t0, c0 = time.perf_counter(), time.process_time()
        report = run(flow)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    events = report.step("events").records_out
    print(json.dumps({"seconds": seconds, "cpu": cpu, "events": events, "dead": report.dead_letters,
                      "blocks_per_event": blocks, "decode_gc": decoding, **watch.as_dict()}))


# --- inputs and checks ----------------------------------------------------------------------


def write_metrics(path: Path, n: int) -> None:
    rng = random.Random(7)
    ts = 1_700_000_000_000
    with path.open("wb") as f:
        for i in range(n):
            f.write(orjson.dumps({"series": f"s{i % 100}", "ts": ts + i * 10,
                                  "value": rng.random() * 1000.0}) + b"\n")


def metrics_reference(src: Path) -> dict[str, list[float]]:
    acc: dict[str, list[float]] = {}
    with src.open("rb") as f:
        for line in f:
            e = orjson.loads(line)
            v = e["value"]
            a = acc.get(e["series"])
            if a is None:
                acc[e["series"]] = [1, v, v, v, e["ts"]]
            else:
                a[0] += 1
                a[1] += v
                a[2] = min(a[2], v)
                a[3] = max(a[3], v)
                a[4] = e["ts"]
    return acc


def check_metrics(ref: dict[str, list[float]], out: Path) -> str | None:
    got = {}
    with out.open("rb") as f:
        for line in f:
            r = orjson.loads(line)
            got[r["series"]] = [r["count"], r["sum"], r["min"], r["max"], r["last_ts"]]
    if got.keys() != ref.keys():
        return f"series differ: {sorted(got.keys() ^ ref.keys())[:5]}"
    for s, (c, sm, lo, hi, last) in ref.items():
        gc_, gsm, glo, ghi, glast = got[s]
        if (c, lo, hi, last) != (gc_, glo, ghi, glast) or not math.isclose(sm, gsm, rel_tol=1e-9):
            return f"series {s}: expected {ref[s]}, got {got[s]}"
    return None


def check_log(ref: Path, out: Path) -> str | None:
    proc = subprocess.run([python(), str(shared_dir() / "check.py"), str(ref), str(out)],
                          capture_output=True, text=True, check=False)
    return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()[-300:]


def inputs(dataset: str, events: int) -> tuple[Path, Any]:
    if dataset == "metrics":
        src = generated(WORK / f"metrics-{events}.jsonl", lambda p: write_metrics(p, events))
        return src, metrics_reference(src)
    shared = shared_dir()
    src = generated(WORK / f"events-{events}.jsonl", lambda p: subprocess.run(
        [python(), str(shared / "gen_events.py"), str(p), str(events)], check=True))
    ref = generated(WORK / f"log_agg-ref-{events}.jsonl", lambda p: subprocess.run(
        [python(), str(shared / "ref.py"), str(src), str(p)], check=True))
    return src, ref


# --- parent -----------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dataset", choices=("log", "metrics"), action="append",
                   help="default: both")
    p.add_argument("--child", nargs=4, metavar=("DATASET", "VARIANT", "SRC", "DST"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    datasets = args.dataset or ["log", "metrics"]
    started = now()
    doc: dict[str, Any] = {"date": started, "events": args.events, "rounds": args.rounds,
                           "datasets": {}}
    targets: list[Target] = []
    ok = True
    for ds in datasets:
        src, ref = inputs(ds, args.events)
        warm(src)
        runs: list[dict[str, Any]] = []
        for rnd in range(1, args.rounds + 1):
            for variant in VARIANTS[ds]:
                out = WORK / NAME / f"{ds}-{variant}.jsonl"
                out.parent.mkdir(parents=True, exist_ok=True)
                res, wall = child_json([python(), __file__, "--child", ds, variant, str(src),
                                        str(out)])
                problem = (check_metrics(ref, out) if ds == "metrics" else check_log(ref, out))
                if res["dead"]:
                    problem = f"{res['dead']} dead letters"
                res.update(variant=variant, round=rnd, wall=wall, correct=problem is None,
                           problem=problem)
                ok &= problem is None
                runs.append(res)
                print(f"{ds} round {rnd} {variant:<13} {res['seconds']:6.2f} s in run, "
                      f"CPU {res['cpu']:6.2f} s ({args.events / res['cpu'] / 1000:5.0f} K ev/s), "
                      f"process wall {wall:5.2f} s, "
                      f"gc {sum(res['collections'])} collections {res['gc_seconds']:.2f} s, "
                      f"decoding alone {res['decode_gc']['collections_per_1m']:.0f} "
                      "collections/1M, "
                      f"{res['tracked_allocations'] / args.events:.2f} tracked/ev, "
                      f"{res['blocks_per_event']:.2f} blocks/ev  "
                      f"{'ok' if problem is None else 'INCORRECT: ' + problem}", flush=True)
        summary: dict[str, dict[str, float | None]] = {}
        for variant in VARIANTS[ds]:
            good = [r for r in runs if r["variant"] == variant and r["correct"]]
            summary[variant] = {
                "seconds": median([r["seconds"] for r in good]),
                "cpu": median([r["cpu"] for r in good]),
                "wall": median([r["wall"] for r in good]),
                "gc_collections": median([sum(r["collections"]) for r in good]),
                "gc_seconds": median([r["gc_seconds"] for r in good]),
                "tracked_per_event": median([r["tracked_allocations"] / r["events"]
                                             for r in good]),
                "blocks_per_event": median([r["blocks_per_event"] for r in good]),
                "decode_gc_collections_per_1m": median(
                    [r["decode_gc"]["collections_per_1m"] for r in good]),
                "decode_gc_seconds_per_1m": median(
                    [r["decode_gc"]["gc_seconds_per_1m"] for r in good]),
            }
        # Per round: the runs of one round are neighbours in time (a noisy machine's cross-check).
        per_round = {
            v: [ratio(d["cpu"], t["cpu"])
                for d in runs if d["variant"] == "dict" and d["correct"]
                for t in runs if t["variant"] == v and t["round"] == d["round"] and t["correct"]]
            for v in VARIANTS[ds] if v != "dict"
        }
        doc["datasets"][ds] = {"input": str(src), "runs": runs, "medians": summary,
                               "throughput_ratio_per_round": per_round}
        untyped = summary["dict"]
        for v in [x for x in VARIANTS[ds] if x != "dict"]:
            typed = summary[v]
            label = f"{ds} {v}/dict"
            targets.append(Target(f"{label} throughput", ratio(untyped["cpu"], typed["cpu"]),
                                  1.37, "x", note=f"CPU s of the run; wall s ratio "
                                  f"{_fmt(ratio(untyped['seconds'], typed['seconds']))}"))
            for what, key in (("GC collections decoding (default GC)",
                               "decode_gc_collections_per_1m"),
                              ("memory blocks per decoded event", "blocks_per_event")):
                t, u = typed[key], untyped[key]
                fewer = None if t is None or u is None or u == 0 else 100 * (1 - t / u)
                targets.append(Target(f"{label} fewer {what}", fewer, 40, "%",
                                      note=f"typed {_fmt(t)}, untyped {_fmt(u)}"))
    full = args.events == DEFAULT_EVENTS and set(datasets) == {"log", "metrics"}
    write_result(NAME, full, doc, targets)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
