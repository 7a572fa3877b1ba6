"""Keyed state: the :class:`StateBackend` interface every backend implements.

A backend holds the state of many keys (all keys of one key group). It is created by the engine
from a :data:`StateBackendFactory` and the codecs of ``K`` and ``V``, which fix the Arrow schema of
its snapshots before the first event runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import pyarrow as pa

from flowlib.codecs import Codec

__all__ = ["StateBackend", "StateBackendFactory", "snapshot_schema"]

K = TypeVar("K")
V = TypeVar("V")


def snapshot_schema(key_codec: Codec[K], value_codec: Codec[V]) -> pa.Schema:
    """The Arrow schema of a snapshot of state typed ``K -> V``: columns ``key`` and ``value``."""
    return pa.schema(
        [
            pa.field("key", key_codec.arrow_type, nullable=False),
            pa.field("value", value_codec.arrow_type),
        ]
    )


class StateBackend(ABC, Generic[K, V]):
    """Typed key-value state of one key group.

    Implementations must pass ``tests/state_backends/test_conformance.py``.
    """

    def __init__(self, key_codec: Codec[K], value_codec: Codec[V]) -> None:
        self.key_codec = key_codec
        self.value_codec = value_codec

    @abstractmethod
    def get(self, key: K) -> V | None:
        """The value stored for ``key``, or ``None`` when there is none."""

    @abstractmethod
    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``key``, replacing any earlier value."""

    @abstractmethod
    def delete(self, key: K) -> None:
        """Forget ``key``; deleting a missing key is not an error."""

    @abstractmethod
    def __contains__(self, key: object) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def items(self) -> Iterator[tuple[K, V]]:
        """All ``(key, value)`` pairs, in no particular order."""

    def snapshot(self) -> pa.Table:
        """All state as an Arrow table with the schema of :func:`snapshot_schema`."""
        keys: list[K] = []
        values: list[V] = []
        for k, v in self.items():
            keys.append(k)
            values.append(v)
        return pa.Table.from_arrays(
            [self.key_codec.to_arrow(keys), self.value_codec.to_arrow(values)],
            schema=snapshot_schema(self.key_codec, self.value_codec),
        )

    def restore(self, table: pa.Table) -> None:
        """Replace all state with the rows of ``table`` (as written by :meth:`snapshot`)."""
        self.clear()
        keys = self.key_codec.from_arrow(table.column("key"))
        values = self.value_codec.from_arrow(table.column("value"))
        for k, v in zip(keys, values, strict=True):
            self.put(k, v)

    def accessors(self) -> tuple[Callable[[K], V | None], Callable[[K, V], None]]:
        """``(get, put)`` callables for the hot path; a backend may return faster equivalents
        of :meth:`get` and :meth:`put` (e.g. bound methods of its dict)."""
        return self.get, self.put

    def clear(self) -> None:
        """Delete every key."""
        for k in [k for k, _ in self.items()]:
            self.delete(k)


StateBackendFactory = Callable[[Codec[K], Codec[V]], StateBackend[K, V]]
"""Builds one backend per key group from the key and value codecs.

A backend class whose ``__init__`` takes ``(key_codec, value_codec)`` is itself a factory.
"""
