"""The keys benchmark as a flowlib user script: sum of ``v`` per ``k``, one line per key.

    flowlib run bench/keys_flowlib.py --recovery DIR --snapshot-interval 1 -- IN OUT

Input from ``bench/gen_keys.py``; 100,000 keys by default, all touched between two snapshots.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from typing_extensions import override

from flowlib import Context, Flow, JsonLinesSink, JsonLinesSource, Processor


@dataclass(frozen=True, slots=True)
class KV:
    k: str
    v: float


@dataclass(frozen=True, slots=True)
class KeySum:
    k: str
    sum: float


class Sum(Processor[KV, KeySum, str, float]):
    """Sum of ``v`` per key; one result per key at end of input."""

    @override
    def process(self, ctx: Context[str, float, KeySum], event: KV) -> None:
        ctx.state.set(ctx.state.get(0.0) + event.v)

    @override
    def on_eof(self, ctx: Context[str, float, KeySum]) -> None:
        ctx.emit(KeySum(ctx.key, ctx.state.get(0.0)))


def key_of(e: KV) -> str:
    return e.k


def build(src: str, dst: str) -> Flow:
    """The keys flow reading ``src`` and writing ``dst``."""
    flow = Flow("keys")
    events = flow.source(JsonLinesSource(src, KV), name="events")
    events.key_by(key_of).process(Sum(), name="sum").sink(JsonLinesSink(dst, KeySum), name="out")
    return flow


if len(sys.argv) != 3:
    sys.exit("usage: flowlib run bench/keys_flowlib.py [--recovery DIR] -- IN OUT")
flow = build(sys.argv[1], sys.argv[2])
