"""Processors and events shared by the testing-kit tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from typing_extensions import override

from flowlib import Context, Processor
from flowlib.time import END_OF_TIME, EPOCH, Timer


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True)
class Reading:
    sensor: str
    ts: datetime
    value: int = 1


@dataclass(frozen=True)
class Window:
    sensor: str
    end: datetime
    total: int


class WindowSum(Processor[Reading, Window, str, dict[int, int]]):
    """Sums values per sensor and 10 s event-time window; emits a window when it closes."""

    @override
    def process(self, ctx: Context[str, dict[int, int], Window], event: Reading) -> None:
        end = int((event.ts - EPOCH).total_seconds()) // 10 * 10 + 10
        sums = ctx.state.get({})
        sums[end] = sums.get(end, 0) + event.value
        ctx.state.set(sums)
        ctx.timers.at_event_time(at(end))

    @override
    def on_timer(self, ctx: Context[str, dict[int, int], Window], timer: Timer) -> None:
        sums = ctx.state.get({})
        end = int((timer.time - EPOCH).total_seconds())
        ctx.emit(Window(ctx.key, timer.time, sums.pop(end)))
        if sums:
            ctx.state.set(sums)
        else:
            ctx.state.clear()


@dataclass(frozen=True)
class Beat:
    key: str
    at: datetime
    seen: int


class Heartbeat(Processor[str, Beat, str, tuple[int, int]]):
    """Counts events per key; 10 s of processing time after a key's first event, and then every
    10 s, reports the count: three beats. State: (events, beats so far)."""

    @override
    def process(self, ctx: Context[str, tuple[int, int], Beat], event: str) -> None:
        n, beats = ctx.state.get((0, 0))
        if n == 0:
            ctx.timers.at_processing_time(ctx.processing_time + timedelta(seconds=10))
        ctx.state.set((n + 1, beats))

    @override
    def on_timer(self, ctx: Context[str, tuple[int, int], Beat], timer: Timer) -> None:
        assert ctx.processing_time == timer.time  # the harness stops the clock at each timer
        n, beats = ctx.state.get((0, 0))
        ctx.emit(Beat(ctx.key, timer.time, n))
        ctx.state.set((n, beats + 1))
        if beats + 1 < 3:
            ctx.timers.at_processing_time(timer.time + timedelta(seconds=10))


class Upper(Processor[str, str]):
    """Stateless: upper-cases; raises on empty strings."""

    @override
    def process(self, ctx: Context[None, None, str], event: str) -> None:
        if not event:
            raise ValueError("empty event")
        ctx.emit(event.upper())


class SneakyState(Processor[str, str]):
    """Stateless by its type, but touches ``ctx.state``: a flow refuses that at run time."""

    @override
    def process(self, ctx: Context[None, None, str], event: str) -> None:
        ctx.state.set(None)
        ctx.emit(event)


class CountInMemory(Processor[str, tuple[str, int], str, int]):
    """Wrong on purpose: keeps counts in the processor object, not in ``ctx.state``, so they are
    lost by a snapshot/restore (``ctx.state`` only marks the key as seen)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    @override
    def process(self, ctx: Context[str, int, tuple[str, int]], event: str) -> None:
        self.counts[ctx.key] = self.counts.get(ctx.key, 0) + 1
        ctx.state.set(1)

    @override
    def on_eof(self, ctx: Context[str, int, tuple[str, int]]) -> None:
        ctx.emit((ctx.key, self.counts.get(ctx.key, 0)))


class FirstPerKey(Processor[Reading, Reading, str, int]):
    """Emits the first reading of each sensor: depends on arrival order."""

    @override
    def process(self, ctx: Context[str, int, Reading], event: Reading) -> None:
        if ctx.state.get_optional() is None:
            ctx.state.set(1)
            ctx.emit(event)


def watermark_seconds(t: datetime | None) -> float | None:
    if t is None or t == END_OF_TIME:
        return None
    return (t - EPOCH).total_seconds()
