"""The shared log_agg workload on flowlib's event-time window operators, streaming.

Windows are emitted as the per-key-group watermark passes their end, not at end of input.

    flowlib run bench/log_agg_windows_flowlib.py -- IN OUT            # 10 s tumbling windows
    flowlib run bench/log_agg_windows_flowlib.py -- IN OUT --sliding  # 1 min windows every 10 s
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from operator import attrgetter

from flowlib import Flow, JsonLinesSink, JsonLinesSource
from flowlib.time import EPOCH
from operators.aggregations import Count, Max, Multi, Sum
from operators.windows import SlidingWindows, TumblingWindows, WindowResult

Key = tuple[str, str]
"""(service, level)."""


@dataclass(frozen=True, slots=True)
class Event:
    """The fields the job reads. The input's others (``host``, ``msg``) are skipped by the
    decoder without being built: declaring only what a job reads is the cheap way to type it."""

    ts: int
    level: str
    service: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class WindowRow:
    window_start_ms: int
    service: str
    level: str
    count: int
    sum: float
    max: float


latency: Callable[[Event], float] = attrgetter("latency_ms")
"""C-level field access: the aggregates read it once per event (a def costs a Python call)."""


def row(w: WindowResult[Key, tuple[int, float, float]]) -> WindowRow:
    count, total, peak = w.value
    start_ms = (w.start - EPOCH) // timedelta(milliseconds=1)
    return WindowRow(start_ms, w.key[0], w.key[1], count, total, peak)


def build(src: str, dst: str, sliding: bool) -> Flow:
    flow = Flow("log_agg_windows")
    events = flow.source(JsonLinesSource(src, Event), name="events")
    timed = events.with_event_time("ts", unit="ms")  # epoch milliseconds, no datetime needed
    agg = Multi(Count(), Sum(latency), Max(latency))
    windows = (
        SlidingWindows(timedelta(minutes=1), timedelta(seconds=10), agg)
        if sliding
        else TumblingWindows(timedelta(seconds=10), agg)
    )
    keyed = timed.key_by(attrgetter("service", "level"), key_type=tuple[str, str])
    keyed.process(windows, name="windows").map(row).sink(JsonLinesSink(dst, WindowRow))
    return flow


flow = build(sys.argv[1], sys.argv[2], "--sliding" in sys.argv[3:])
