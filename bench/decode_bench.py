#!/usr/bin/env python3
"""Decode cost per event: flowlib's inferred codec vs ``orjson.loads`` to a dict vs msgspec.

    python bench/decode_bench.py [--events N] [--repeats R]

Two events: a float64 metric ``{"series", "ts", "value"}`` (full-precision floats) and a log
event of the shared log_agg workload (six fields). For each, on the same lines and the same
type (a frozen, slotted dataclass, as users write them):

* ``flowlib``: ``codec_for(T).decode(line)`` per line;
* ``flowlib bulk``: ``codec_for(T).decode_lines(batch)``, what the JSON-lines source does with
  each source batch (BATCH_BYTES);
* ``msgspec``: ``msgspec.json.Decoder(T).decode(line)`` per line, and ``decode_lines``;
* ``orjson``: ``orjson.loads(line)`` per line, to a dict;
* ``msgspec Struct``: the same fields as a ``msgspec.Struct(gc=False)``, bulk (for reference).

Timing: the CPU time (``time.process_time``; equal to wall time on a quiet machine, and far less
disturbed by other load) of decoding N lines, best of R repeats, methods interleaved within each
repeat, with the GC settings of a flowlib run (heap frozen, young-generation threshold 100,000).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import Target, now, write_result
from typed_vs_untyped import LogEvent, LogEventS, Metric, MetricS, inputs

from flowlib.codecs import codec_for
from flowlib.connectors.files import BATCH_BYTES

NAME = "decode"
DEFAULT_EVENTS = 200_000


BATCH = BATCH_BYTES


def batches(lines: list[bytes]) -> list[bytes]:
    """Lines joined into batches of about BATCH_BYTES, as the JSON-lines source reads them."""
    out, cur, size = [], [], 0
    for line in lines:
        cur.append(line)
        size += len(line)
        if size >= BATCH:
            out.append(b"".join(cur))
            cur, size = [], 0
    if cur:
        out.append(b"".join(cur))
    return out


def methods(tp: type[Any], struct: type[Any], lines: list[bytes]) -> dict[str, Callable[[], int]]:
    stripped = [x.rstrip(b"\n") for x in lines]
    chunks = batches(lines)
    codec = codec_for(tp)
    dec = msgspec.json.Decoder(tp)
    sdec = msgspec.json.Decoder(struct)
    loads = orjson.loads

    def each(f: Callable[[bytes], Any]) -> Callable[[], int]:
        def go() -> int:
            out = [f(x) for x in stripped]
            return len(out)
        return go

    def bulk(f: Callable[[bytes], list[Any]]) -> Callable[[], int]:
        def go() -> int:
            n = 0
            for c in chunks:
                n += len(f(c))
            return n
        return go

    return {
        "flowlib": each(codec.decode),
        "flowlib bulk": bulk(codec.decode_lines),
        "msgspec": each(dec.decode),
        "msgspec bulk": bulk(dec.decode_lines),
        "orjson": each(loads),
        "msgspec Struct bulk": bulk(sdec.decode_lines),
    }


def measure(ms: dict[str, Callable[[], int]], n: int, repeats: int) -> dict[str, float]:
    """Best µs per event of each method."""
    best = dict.fromkeys(ms, float("inf"))
    gc.collect()
    gc.freeze()
    old = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)  # as flowlib.engine.run does
    try:
        for _ in range(repeats):
            for name, f in ms.items():
                t0 = time.process_time()
                got = f()
                dt = time.process_time() - t0
                assert got == n, (name, got, n)
                best[name] = min(best[name], dt / n * 1e6)
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="lines decoded per repeat")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    doc: dict[str, Any] = {"date": now(), "events": args.events, "repeats": args.repeats,
                           "gc": "frozen heap, threshold (100000, 50, 1000)", "us_per_event": {}}
    targets: list[Target] = []
    limits = {"metric": 0.9, "log": 1.8}
    for kind, tp, struct in (("metric", Metric, MetricS), ("log", LogEvent, LogEventS)):
        src, _ = inputs("metrics" if kind == "metric" else "log", max(args.events, 1))
        with src.open("rb") as f:
            lines = [f.readline() for _ in range(args.events)]
        lines = [x for x in lines if x]
        res = measure(methods(tp, struct, lines), len(lines), args.repeats)
        doc["us_per_event"][kind] = res
        print(f"{kind}: " + ", ".join(f"{k} {v:.3f} µs" for k, v in res.items()), flush=True)
        targets += [
            Target(f"decode {kind} flowlib/msgspec per line", res["flowlib"] / res["msgspec"],
                   1.3, "x", higher=False,
                   note=f"{res['flowlib']:.3f} vs {res['msgspec']:.3f} µs"),
            Target(f"decode {kind} flowlib/msgspec bulk", res["flowlib bulk"] /
                   res["msgspec bulk"], 1.3, "x", higher=False,
                   note=f"{res['flowlib bulk']:.3f} vs {res['msgspec bulk']:.3f} µs"),
            Target(f"decode {kind} flowlib bulk (the source's path)", res["flowlib bulk"],
                   limits[kind], "µs/event", higher=False,
                   note=f"per line {res['flowlib']:.3f} µs; orjson.loads {res['orjson']:.3f} µs"),
        ]
    write_result(NAME, args.events == DEFAULT_EVENTS, doc, targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
