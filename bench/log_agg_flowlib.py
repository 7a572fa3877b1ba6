"""The shared log_agg workload (``../shared/bench/WORKLOAD.md``) as a flowlib user script.

Per (service, level) and 10-second window: count, sum and max of ``latency_ms``.

    flowlib run bench/log_agg_flowlib.py -- IN OUT

This is the hand-keyed variant, written before flowlib had event-time windows: the window start
is part of the key and every window is emitted at end of input (the same result as windows that
close on the watermark, since the input is in timestamp order and nothing is late). The same job
on the window operators, streaming, is ``log_agg_windows_flowlib.py`` (the ``windows``
benchmark).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from typing_extensions import override

from flowlib import Context, Flow, JsonLinesSink, JsonLinesSource, Processor

WINDOW_MS = 10_000

Key = tuple[int, str, str]
"""(window_start_ms, service, level)."""


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
    """Running aggregate of one window and key; mutable so an event costs no allocation."""

    count: int
    sum: float
    max: float


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
        # Store it back: a backend that serialises state returns a copy from get().
        ctx.state.set(acc)

    @override
    def on_eof(self, ctx: Context[Key, Acc, WindowResult]) -> None:
        acc = ctx.state.get_optional()
        if acc is not None:
            start, service, level = ctx.key
            ctx.emit(WindowResult(start, service, level, acc.count, acc.sum, acc.max))


def build(src: str, dst: str) -> Flow:
    """The log_agg flow reading ``src`` and writing ``dst``."""
    flow = Flow("log_agg")
    events = flow.source(JsonLinesSource(src, Event), name="events")
    windows = events.key_by(
        lambda e: (e.ts - e.ts % WINDOW_MS, e.service, e.level), key_type=tuple[int, str, str]
    ).process(WindowAgg(), name="window_agg")
    windows.sink(JsonLinesSink(dst, WindowResult), name="out")
    return flow


if len(sys.argv) != 3:
    sys.exit("usage: flowlib run bench/log_agg_flowlib.py -- IN OUT")
flow = build(sys.argv[1], sys.argv[2])
