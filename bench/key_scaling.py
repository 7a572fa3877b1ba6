#!/usr/bin/env python3
"""Per-event cost of a keyed flowlib pipeline as the number of keys grows: 100 to 10,000,000.

    python bench/key_scaling.py [--keys 100,10000,1000000,10000000] [--disk-at 10000000]
                                [--events N] [--rounds R]

The job is the ``keys`` benchmark's (``gen_keys.py`` input ``{"k": "key<i % K>", "v": float}``,
sum of ``v`` per key, one line per key at end of input), run in a fresh process per point through
``flowlib.engine.run``: source, ``key_by``, a ``Sum`` processor, sink. Every point processes
``max(--events, 2 * K)`` events, so every key is updated at least once after its insertion.
State lives in the memory backend, and in the on-disk backend (``state_backends.DiskBackend``)
at the ``--disk-at`` sizes. The cost per event is the run's CPU time (robust on a shared machine;
wall time recorded too) until the keyed step has seen every event, over the events: the end of
input, which emits one result per key (a cost per key, not per event), is left out of it and
reported beside it. Output checked: one row per key, sums adding up to the input's total.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from typing_extensions import override

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import BENCH, WORK, Target, child_json, generated, now, python, write_result

from flowlib import Context, Flow, JsonLinesSink, JsonLinesSource, Processor
from flowlib.dead_letter import DeadLetter
from flowlib.engine import run
from flowlib.engine._counters import Counters
from flowlib.state import StateBackendFactory

NAME = "key_scaling"
DEFAULT_KEYS = (100, 10_000, 1_000_000, 10_000_000)
DEFAULT_DISK = (10_000_000,)
DEFAULT_EVENTS = 2_000_000


@dataclass(frozen=True, slots=True)
class KV:
    k: str
    v: float


@dataclass(frozen=True, slots=True)
class KeySum:
    k: str
    sum: float


class Sum(Processor[KV, KeySum, str, float]):
    @override
    def process(self, ctx: Context[str, float, KeySum], event: KV) -> None:
        ctx.state.set(ctx.state.get(0.0) + event.v)

    @override
    def on_eof(self, ctx: Context[str, float, KeySum]) -> None:
        ctx.emit(KeySum(ctx.key, ctx.state.get(0.0)))


def key_of(e: KV) -> str:
    return e.k


def child(backend: str, src: str, dst: str, n_events: str) -> None:
    state: StateBackendFactory[str, float]
    if backend == "disk":
        from state_backends import DiskBackend

        state = DiskBackend
    else:
        from state_backends import MemoryBackend

        state = MemoryBackend
    flow = Flow("key_scaling", dead_letters=JsonLinesSink(dst + ".dead", DeadLetter))
    events = flow.source(JsonLinesSource(src, KV), name="events")
    events.key_by(key_of).process(Sum(), name="sum", state=state).sink(
        JsonLinesSink(dst, KeySum), name="out")
    total = int(n_events)
    processed: list[float] = []  # CPU and wall seconds when the keyed step had seen every event
    stop = threading.Event()

    def watch(counters: Counters) -> None:
        # Polls the step's counter: the end-of-input phase (one result per key, which grows
        # with the key count, not the event count) is left out of the per-event figure.
        while not stop.wait(0.02):
            if counters.report(0.0).step("sum").records_in >= total:
                processed.extend([time.process_time() - c0, time.perf_counter() - t0])
                return

    def on_start(counters: Counters) -> None:
        threading.Thread(target=watch, args=(counters,), daemon=True).start()

    t0, c0 = time.perf_counter(), time.process_time()
    report = run(flow, on_start=on_start)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    stop.set()
    print(json.dumps({
        "seconds": seconds, "cpu": cpu, "events": report.step("events").records_out,
        "dead": report.dead_letters,
        "processing_cpu": processed[0] if processed else None,
        "processing_seconds": processed[1] if processed else None,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def gen_keys(path: Path, n: int, k: int) -> None:
    subprocess.run([python(), str(BENCH / "gen_keys.py"), str(path), str(n), str(k)], check=True)


def total_of(src: Path) -> tuple[int, float]:
    """(lines, sum of v) of an input, computed once and kept beside it."""
    cache = src.with_suffix(".total.json")
    if cache.exists():
        n, s = json.loads(cache.read_text())
        return int(n), float(s)
    n, s = 0, 0.0
    with src.open("rb") as f:
        for line in f:
            s += orjson.loads(line)["v"]
            n += 1
    cache.write_text(json.dumps([n, s]))
    return n, s


def check(out: Path, keys: int, total: float) -> str | None:
    seen: set[str] = set()
    s = 0.0
    with out.open("rb") as f:
        for line in f:
            r = orjson.loads(line)
            if r["k"] in seen:
                return f"key {r['k']} twice"
            seen.add(r["k"])
            s += r["sum"]
    if len(seen) != keys:
        return f"{len(seen)} keys, expected {keys}"
    if not math.isclose(s, total, rel_tol=1e-9):
        return f"sums add up to {s}, input total {total}"
    return None


def targets_of(points: list[dict[str, Any]], disk_at: list[int]) -> list[Target]:
    """Flatness of the cost per event across key counts: over every point, and from 10,000 keys
    up (where each key holds about one event per batch, so only the state's size still grows)."""
    best: dict[tuple[str, int], float] = {}
    for pt in points:
        if pt["correct"]:
            key = (pt["backend"], pt["keys"])
            best[key] = min(best.get(key, math.inf), pt["us_per_event_processing_cpu"])
    mem = {k: v for (b, k), v in best.items() if b == "memory"}
    curve = {k: v for k, v in mem.items() if k not in disk_at}
    curve.update({k: v for (b, k), v in best.items() if b == "disk"})
    targets: list[Target] = []
    for label, pts in (("memory backend", mem),
                       ("memory, disk at the top", curve if disk_at else {})):
        for low in sorted({min(pts, default=0), 10_000}):
            sel = {k: v for k, v in pts.items() if k >= low}
            if len(sel) < 2 or (low == 10_000 and len(sel) == len(pts)):
                continue
            targets.append(Target(
                f"keys {min(sel):,}->{max(sel):,} {label}: max/min cost per event",
                max(sel.values()) / min(sel.values()), 2.0, "x", higher=False,
                note=", ".join(f"{k:,}{' (disk)' if k in disk_at and pts is curve else ''}: "
                               f"{v:.2f} µs" for k, v in sorted(sel.items()))))
    return targets


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--keys", default=",".join(map(str, DEFAULT_KEYS)))
    p.add_argument("--disk-at", default=",".join(map(str, DEFAULT_DISK)),
                   help="key counts also measured with the on-disk backend ('' for none)")
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--summarise", type=Path, metavar="RESULT_JSON",
                   help="recompute the targets of an earlier result file, in place")
    p.add_argument("--child", nargs=4, metavar=("BACKEND", "SRC", "DST", "EVENTS"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    keys, disk_at = _ints(args.keys), _ints(args.disk_at)
    if args.summarise:
        old = json.loads(args.summarise.read_text())
        found = sorted({p["keys"] for p in old["points"] if p["backend"] == "disk"})
        targets = targets_of(old["points"], found)
        for t in targets:
            print(t.line())
        old["targets"] = [t.as_dict() for t in targets]
        args.summarise.write_text(json.dumps(old, indent=2) + "\n")
        return 0
    points = [("memory", k) for k in keys] + [("disk", k) for k in disk_at]
    doc: dict[str, Any] = {"date": now(), "events_floor": args.events, "rounds": args.rounds,
                           "points": []}
    ok = True
    scratch = WORK / NAME
    scratch.mkdir(parents=True, exist_ok=True)
    for rnd in range(1, args.rounds + 1):
        for backend, k in points:
            n = max(args.events, 2 * k)
            src = generated(WORK / f"keys-{n}-{k}.jsonl", functools.partial(gen_keys, n=n, k=k))
            _, total = total_of(src)
            out = scratch / f"{backend}-{k}.jsonl"
            try:
                res, wall = child_json([python(), __file__, "--child", backend, str(src),
                                        str(out), str(n)])
                problem = f"{res['dead']} dead letters" if res["dead"] else check(out, k, total)
            except RuntimeError as exc:
                res, wall, problem = {}, 0.0, str(exc)
            ok &= problem is None
            point = {"backend": backend, "keys": k, "events": n, "round": rnd,
                     "process_wall": wall, **res, "correct": problem is None,
                     "problem": problem}
            if res:
                point["us_per_event_cpu"] = res["cpu"] / n * 1e6
                point["us_per_event_wall"] = res["seconds"] / n * 1e6
                # None when the run ended between two polls: then the whole run counts.
                point["us_per_event_processing_cpu"] = (
                    res["processing_cpu"] or res["cpu"]) / n * 1e6
            doc["points"].append(point)
            print(f"{backend:<6} {k:>10,} keys {n:>10,} events: "
                  + (f"{point['us_per_event_processing_cpu']:.2f} µs/event CPU until every "
                     f"event was processed, {point['us_per_event_cpu']:.2f} with the end of "
                     f"input ({point['us_per_event_wall']:.2f} wall), "
                     f"{res['max_rss_mb']:.0f} MB  "
                     if res else "")
                  + ("ok" if problem is None else "INCORRECT: " + problem), flush=True)
    targets = targets_of(doc["points"], disk_at)
    full = (tuple(keys) == DEFAULT_KEYS and tuple(disk_at) == DEFAULT_DISK
            and args.events == DEFAULT_EVENTS)
    write_result(NAME, full, doc, targets)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
