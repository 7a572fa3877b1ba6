"""bytewax 0.21.1 peer for the sliding variant: 1-minute windows every 10 s, fold_window.

usage: python -m bytewax.run "sliding_bytewax:get_flow('IN', 'OUT')"
Written like the shared peer_bytewax.py, with a SlidingWindower instead of a tumbling one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.connectors.files import FileSink, FileSource
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, SlidingWindower, fold_window

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LENGTH = timedelta(minutes=1)
OFFSET = timedelta(seconds=10)


def ts_of(e: dict[str, Any]) -> datetime:
    return EPOCH + timedelta(milliseconds=e["ts"])


def folder(acc: list[float] | None, e: dict[str, Any]) -> list[float]:
    lat = e["latency_ms"]
    if acc is None:
        return [1, lat, lat]
    acc[0] += 1
    acc[1] += lat
    if lat > acc[2]:
        acc[2] = lat
    return acc


def merger(a: list[float], b: list[float]) -> list[float]:
    raise NotImplementedError  # sliding windows never merge


def fmt(key_wid_acc: tuple[str, tuple[int, list[float]]]) -> tuple[str, str]:
    key, (wid, (c, s, m)) = key_wid_acc
    svc, lvl = key.split("|")
    # window id n starts at align_to + n * offset
    return key, orjson.dumps({"window_start_ms": wid * 10_000, "service": svc, "level": lvl,
                              "count": int(c), "sum": s, "max": m}).decode()


def get_flow(src: str, dst: str) -> Dataflow:
    Path(dst).write_text("")
    flow = Dataflow("sliding")
    lines = op.input("in", flow, FileSource(src))
    events = op.map("parse", lines, orjson.loads)
    keyed = op.key_on("key", events, lambda e: f"{e['service']}|{e['level']}")
    clock = EventClock(ts_of, wait_for_system_duration=timedelta(0),
                       now_getter=lambda: EPOCH, to_system_utc=lambda _t: None)
    windower = SlidingWindower(length=LENGTH, offset=OFFSET, align_to=EPOCH)
    win = fold_window("agg", keyed, clock, windower, lambda: None, folder, merger, ordered=False)
    op.output("out", op.map("fmt", win.down, fmt), FileSink(Path(dst)))
    return flow
