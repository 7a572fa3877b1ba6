"""keys benchmark on bytewax 0.21.1, idiomatic: one stateful logic per key (``fold_final``).

usage: python -m bytewax.run "keys_bytewax:get_flow('IN', 'OUT')" -r DIR -s 1 -b 0
(DIR initialised first with ``python -m bytewax.recovery DIR 1``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import bytewax.operators as op
import orjson
from bytewax.connectors.files import FileSink, FileSource
from bytewax.dataflow import Dataflow


class KV(TypedDict):
    """One input event (a type for mypy only: orjson returns plain dicts)."""

    k: str
    v: float


def key_of(e: KV) -> str:
    return e["k"]


def add(acc: float, e: KV) -> float:
    return acc + e["v"]


def zero() -> float:
    return 0.0


def fmt(key_sum: tuple[str, float]) -> tuple[str, str]:
    key, total = key_sum
    return key, orjson.dumps({"k": key, "sum": total}).decode()


def get_flow(src: str, dst: str) -> Dataflow:
    """The dataflow summing ``v`` per ``k`` from ``src`` into ``dst``."""
    Path(dst).write_text("")  # FileSink requires the file to exist
    flow = Dataflow("keys")
    lines = op.input("in", flow, FileSource(src))
    events = op.map("parse", lines, orjson.loads)
    keyed = op.key_on("key", events, key_of)
    sums = op.fold_final("sum", keyed, zero, add)
    op.output("out", op.map("fmt", sums, fmt), FileSink(Path(dst)))
    return flow
