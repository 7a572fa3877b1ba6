"""What a running flow is doing beyond its record counts: batch latencies, checkpoints, and the
key groups whose state and watermark observers read (metrics, logs).

The worker threads record a batch's latency only while someone asked for it (``Counters.timed``),
a checkpoint's cost once per key group snapshot; state sizes and watermarks are read from the
groups at scrape time, so none of this runs per event.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from flowlib.time import END_OF_TIME, from_micros, to_micros

__all__ = [
    "CHECKPOINT_BUCKETS",
    "LATENCY_BUCKETS",
    "Checkpoint",
    "CheckpointTally",
    "Histogram",
    "StateProbe",
    "WatchedGroup",
]

# Upper bounds (seconds) of the histogram buckets: a batch takes from tens of microseconds (a
# map over a few events) to seconds (a large state flushed to disk).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0)
CHECKPOINT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                      30.0)


class Histogram:
    """Counts of observations per bucket (``value <= bound``, the last one unbounded) and
    their sum; the caller holds the lock."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> Histogram:
        h = Histogram(self.bounds)
        h.counts = list(self.counts)
        h.sum = self.sum
        return h

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at or below it)``, ending with ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


@dataclass
class Checkpoint:
    """The state snapshots one process took at one epoch's end: a checkpoint, as far as this
    process is concerned."""

    number: int
    seconds: float = 0.0  # time spent taking the snapshots, over every worker thread
    groups: int = 0  # key group snapshots taken
    bytes_by_step: dict[str, int] = field(default_factory=dict)
    last_at: float = 0.0  # monotonic time the latest snapshot ended

    @property
    def bytes(self) -> int:
        return sum(self.bytes_by_step.values())


class CheckpointTally:
    """Key group snapshots, grouped into checkpoints.

    bytewax snapshots every key group it touched when an epoch ends, one after another on each
    worker thread, and does not say which epoch: snapshots with less than ``gap`` seconds
    between them belong to one checkpoint (epochs are at least a snapshot interval apart, and
    the runner sets ``gap`` to at most half of it).
    """

    def __init__(self, gap: float = 0.5) -> None:
        self.gap = gap
        self._lock = threading.Lock()
        self._open: Checkpoint | None = None
        self._unlogged: list[Checkpoint] = []
        self.count = 0
        self.last: Checkpoint | None = None
        self.durations = Histogram(CHECKPOINT_BUCKETS)
        self.bytes_total = 0

    def record(self, step: str, seconds: float, size: int, now: float | None = None) -> None:
        """A key group of ``step`` took ``seconds`` to snapshot ``size`` bytes, ending ``now``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            cp = self._open
            if cp is not None and now - seconds - cp.last_at > self.gap:
                self._close()
                cp = None
            if cp is None:
                cp = self._open = Checkpoint(self.count + 1)
            cp.seconds += seconds
            cp.groups += 1
            cp.bytes_by_step[step] = cp.bytes_by_step.get(step, 0) + size
            cp.last_at = max(cp.last_at, now)

    def _close(self) -> None:
        cp = self._open
        assert cp is not None
        self._open = None
        self.count += 1
        self.last = cp
        self.durations.observe(cp.seconds)
        self.bytes_total += cp.bytes
        if len(self._unlogged) < 1000:  # nobody takes them (no logger): keep memory bounded
            self._unlogged.append(cp)

    def _close_idle(self, now: float | None, all_: bool) -> None:
        now = time.monotonic() if now is None else now
        if self._open is not None and (all_ or now - self._open.last_at > self.gap):
            self._close()

    def take_finished(self, now: float | None = None, *, all_: bool = False) -> list[Checkpoint]:
        """Checkpoints finished since the last call: no snapshot for ``gap`` seconds, or, with
        ``all_``, whatever is open (the run ended)."""
        with self._lock:
            self._close_idle(now, all_)
            out, self._unlogged = self._unlogged, []
        return out

    def summary(
        self, now: float | None = None
    ) -> tuple[int, Histogram, int, Checkpoint | None]:
        """``(checkpoints, duration histogram, bytes in all, the latest)``, finished ones only."""
        with self._lock:
            self._close_idle(now, False)
            return self.count, self.durations.copy(), self.bytes_total, self.last


_END_US = to_micros(END_OF_TIME)


class WatchedGroup(Protocol):
    """What observers read of a key group (``flowlib.engine._group.KeyGroup``): attributes
    whose reading writes nothing, as the group's worker thread may be running."""

    @property
    def watermark_us(self) -> int | None: ...

    @property
    def backend(self) -> Any: ...


class StateProbe:
    """The key groups of each keyed step in this process, read by observers: state keys, and
    the step's watermark (the earliest of its groups' watermarks: events behind it are late)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, list[WatchedGroup]] = {}

    def watch(self, step: str, group: WatchedGroup) -> None:
        with self._lock:
            self._groups.setdefault(step, []).append(group)

    def _of(self) -> list[tuple[str, list[WatchedGroup]]]:
        with self._lock:
            return [(s, list(gs)) for s, gs in self._groups.items()]

    def state_keys(self) -> dict[str, int]:
        """Keys in state per keyed step (a disk backend's as of its last flush)."""
        return {s: sum(g.backend.approximate_len() for g in gs) for s, gs in self._of()}

    def watermarks(self) -> dict[str, datetime]:
        """Each event-time step's watermark, for steps whose groups have seen events and whose
        input has not ended."""
        out: dict[str, datetime] = {}
        for s, gs in self._of():
            marks = [w for g in gs if (w := g.watermark_us) is not None and w < _END_US]
            if marks:
                out[s] = from_micros(min(marks))
        return out
