"""The timers of one key group: per key and clock, ordered by time, kept in checkpoints."""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime
from typing import Any

from flowlib.time import TimerKind

__all__ = ["TimerTable"]


class TimerTable:
    """Timers of many keys on two clocks; fires them in time order (ties: in order set).

    >>> from flowlib.time import EPOCH
    >>> from datetime import timedelta
    >>> t = TimerTable()
    >>> t.add("a", EPOCH + timedelta(seconds=2), "event")
    >>> t.add("b", EPOCH + timedelta(seconds=1), "event")
    >>> t.add("b", EPOCH + timedelta(seconds=1), "event")  # already set: no duplicate
    >>> [(k, w.second) for w, k in t.pop_due("event", EPOCH + timedelta(seconds=5))]
    [('b', 1), ('a', 2)]
    """

    def __init__(self) -> None:
        self._live: set[tuple[TimerKind, datetime, Any]] = set()
        self._heaps: dict[TimerKind, list[tuple[datetime, int, Any]]] = {
            "event": [],
            "processing": [],
        }
        self._seq = itertools.count()

    def add(self, key: Any, t: datetime, kind: TimerKind) -> None:
        entry = (kind, t, key)
        if entry in self._live:
            return
        self._live.add(entry)
        heapq.heappush(self._heaps[kind], (t, next(self._seq), key))

    def remove(self, key: Any, t: datetime, kind: TimerKind) -> None:
        # Lazy deletion: the heap entry is skipped when it reaches the top.
        self._live.discard((kind, t, key))

    def _top(self, kind: TimerKind) -> tuple[datetime, int, Any] | None:
        heap = self._heaps[kind]
        while heap:
            t, _, key = heap[0]
            if (kind, t, key) in self._live:
                return heap[0]
            heapq.heappop(heap)
        return None

    def peek(self, kind: TimerKind) -> datetime | None:
        """A lower bound of the earliest timer of ``kind`` (cancelled ones may still show)."""
        heap = self._heaps[kind]
        return heap[0][0] if heap else None

    def next_time(self, kind: TimerKind) -> datetime | None:
        """When the earliest timer of ``kind`` is due, or ``None``."""
        top = self._top(kind)
        return None if top is None else top[0]

    def pop_due(self, kind: TimerKind, upto: datetime) -> list[tuple[datetime, Any]]:
        """Remove and return ``(time, key)`` of every timer of ``kind`` due at ``upto``."""
        due: list[tuple[datetime, Any]] = []
        while (top := self._top(kind)) is not None and top[0] <= upto:
            t, _, key = heapq.heappop(self._heaps[kind])
            self._live.discard((kind, t, key))
            due.append((t, key))
        return due

    def entries(self) -> list[tuple[Any, datetime, TimerKind]]:
        """Every live timer as ``(key, time, kind)``, in firing order per clock."""
        out: list[tuple[Any, datetime, TimerKind]] = []
        for kind in ("event", "processing"):
            heap = sorted(self._heaps[kind])
            out += [(key, t, kind) for t, _, key in heap if (kind, t, key) in self._live]
        return out

    def __len__(self) -> int:
        return len(self._live)
