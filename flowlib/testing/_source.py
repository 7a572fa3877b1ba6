"""TestSource: a typed placeholder source whose events a test supplies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from typing_extensions import override

from flowlib.connectors.base import Source, SourcePartition
from flowlib.dead_letter import DeadLetter

__all__ = ["CrashPlan", "SimulatedCrash", "TestSource"]

T = TypeVar("T")


class SimulatedCrash(Exception):  # it is not an error of the code under test
    """Raised by a source of :func:`~flowlib.testing.run_flow` at its ``crash_after`` point;
    ``run_flow`` then resumes the run.

    >>> from flowlib import Flow, ListSink
    >>> from flowlib.testing import run_flow
    >>> flow, out = Flow("crashing"), ListSink(int)
    >>> flow.source(TestSource(int, [1, 2, 3])).sink(out)
    >>> result = run_flow(flow, crash_after=2)
    >>> result.crashed, result.outputs(out)
    (True, [1, 2, 3])
    """


@dataclass
class CrashPlan:
    """Shared by the fed sources of one run: crash once ``after`` events were read in total.

    >>> plan = CrashPlan(after=3)
    >>> plan.allowance(2), plan.allowance(2), plan.reached()
    (2, 1, True)
    """

    after: int
    armed: bool = True
    grace: float = 0.05
    """Seconds between reaching the point and raising, so checkpoints of the events before it
    can complete (otherwise the resume would usually start from scratch)."""
    read: int = 0
    crashed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reached(self) -> bool:
        """Whether ``after`` events were read."""
        with self.lock:
            return self.read >= self.after

    def allowance(self, wanted: int) -> int:
        """How many of ``wanted`` events may still be read before the crash point."""
        with self.lock:
            if not self.armed:
                return wanted
            n = max(0, min(wanted, self.after - self.read))
            self.read += n
            return n


class _Partition(SourcePartition[T]):
    def __init__(
        self, items: Sequence[T], batch_size: int, resume: int | None, plan: CrashPlan | None
    ) -> None:
        self._items = items
        self._batch_size = batch_size
        self._next = resume or 0
        self._plan = plan
        self._reached: float | None = None

    @override
    def read_batch(self) -> tuple[list[T], list[DeadLetter]] | None:
        size = self._batch_size
        remaining = len(self._items) - self._next
        plan = self._plan
        if plan is not None and plan.armed:
            # At the crash point the source crashes rather than end: crash_after may equal the
            # number of events (a crash once all were read, before the end of input).
            size = plan.allowance(min(size, remaining)) if remaining else 0
            if size == 0 and (remaining or plan.reached()):
                return self._crash(plan)
        if remaining <= 0:
            return None
        batch = list(self._items[self._next : self._next + size])
        self._next += len(batch)
        return batch, []

    def _crash(self, plan: CrashPlan) -> tuple[list[T], list[DeadLetter]]:
        if self._reached is None:
            self._reached = time.monotonic()
        if time.monotonic() - self._reached < plan.grace:
            time.sleep(0.001)
            return [], []
        plan.crashed = True
        msg = f"simulated crash after {plan.after} events"
        raise SimulatedCrash(msg)

    @override
    def position(self) -> int:
        return self._next

    @override
    def size_hint(self) -> tuple[int, int]:
        return (self._next, len(self._items))


class TestSource(Source[T], Generic[T]):
    """A typed source for tests: events given here, or replaced per run by ``run_flow``.

    >>> src = TestSource(int, [1, 2, 3])
    >>> src.item_type, src.items
    (<class 'int'>, (1, 2, 3))
    """

    __test__ = False  # not a pytest test class, despite its name

    @overload
    def __init__(self, item_type: type[T], items: Iterable[T] = (), *, batch_size: int = 1) -> None:
        ...
    @overload
    def __init__(self, item_type: object, items: Iterable[T] = (), *, batch_size: int = 1) -> None:
        ...
    def __init__(
        self, item_type: object, items: Iterable[T] = (), *, batch_size: int = 1,
    ) -> None:
        self.item_type = item_type
        self.items: tuple[T, ...] = tuple(items)
        self.batch_size = batch_size
        self._plan: CrashPlan | None = None

    @override
    def partitions(self) -> list[str]:
        return ["items"]

    @override
    def open(self, partition: str, step: str, resume: Any | None) -> SourcePartition[T]:
        return _Partition(self.items, self.batch_size, resume, self._plan)
