"""In-memory sources and sinks, for tests and examples (one process only)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar, overload

from typing_extensions import override

from flowlib.connectors.base import Sink, SinkPartition, Source, SourcePartition
from flowlib.dead_letter import DeadLetter

__all__ = ["ListSink", "ListSource"]

T = TypeVar("T")


class _ListPartition(SourcePartition[T]):
    def __init__(self, items: Sequence[T], batch_size: int, resume: int | None) -> None:
        self._items = items
        self._batch_size = batch_size
        self._next = resume or 0

    @override
    def read_batch(self) -> tuple[list[T], list[DeadLetter]] | None:
        if self._next >= len(self._items):
            return None
        end = self._next + self._batch_size
        batch = list(self._items[self._next : end])
        self._next = min(end, len(self._items))
        return batch, []

    @override
    def position(self) -> int:
        return self._next

    @override
    def size_hint(self) -> tuple[int, int]:
        return (self._next, len(self._items))


class ListSource(Source[T]):
    """Events from a list held in memory.

    >>> src = ListSource([1, 2, 3], int)
    >>> src.item_type
    <class 'int'>
    """

    def __init__(self, items: Iterable[T], item_type: type[T], *, batch_size: int = 1024) -> None:
        self.items = tuple(items)
        self.item_type = item_type
        self.batch_size = batch_size

    @override
    def partitions(self) -> list[str]:
        return ["list"]

    @override
    def open(self, partition: str, step: str, resume: Any | None) -> SourcePartition[T]:
        return _ListPartition(self.items, self.batch_size, resume)


class _ListSinkPartition(SinkPartition[T]):
    def __init__(self, sink: ListSink[T], resume: int | None) -> None:
        self._sink = sink
        with sink._lock:
            if resume is not None:
                del sink.items[resume:]  # drop what the crashed run wrote after its checkpoint
            else:
                sink.items.clear()

    @override
    def write_batch(self, items: Sequence[T]) -> None:
        with self._sink._lock:
            self._sink.items.extend(items)

    @override
    def position(self) -> int:
        return len(self._sink.items)


class ListSink(Sink[T], Generic[T]):
    """Collects items into ``self.items``; works for runs inside the current process.

    >>> sink = ListSink(int)
    >>> sink.items
    []
    """

    @overload
    def __init__(self: ListSink[Any]) -> None: ...
    @overload
    def __init__(self, item_type: type[T]) -> None: ...
    def __init__(self, item_type: object = Any) -> None:
        self.item_type = item_type
        self.items: list[T] = []
        self._lock = threading.Lock()

    @override
    def partitions(self) -> list[str]:
        return ["list"]

    @override
    def open(self, partition: str, resume: Any | None) -> SinkPartition[T]:
        return _ListSinkPartition(self, resume)

    @property
    @override
    def guarantee(self) -> str:
        return "exactly-once"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
