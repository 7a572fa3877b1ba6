"""The in-memory backend: a dict per key group."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pyarrow as pa
from typing_extensions import override

from flowlib.codecs import Codec
from flowlib.state import StateBackend, snapshot_schema

__all__ = ["MemoryBackend"]

K = TypeVar("K")
V = TypeVar("V")


class MemoryBackend(StateBackend[K, V]):
    """Keeps state in a Python dict; snapshots are full Arrow tables.

    >>> from flowlib.codecs import codec_for
    >>> s = MemoryBackend(codec_for(str), codec_for(int))
    >>> s.put("a", 1)
    >>> s.get("a"), s.get("b"), len(s)
    (1, None, 1)
    >>> s.snapshot().to_pylist()
    [{'key': 'a', 'value': 1}]
    """

    def __init__(self, key_codec: Codec[K], value_codec: Codec[V]) -> None:
        super().__init__(key_codec, value_codec)
        self._data: dict[K, V] = {}

    @override
    def get(self, key: K) -> V | None:
        return self._data.get(key)

    @override
    def put(self, key: K, value: V) -> None:
        self._data[key] = value

    @override
    def delete(self, key: K) -> None:
        self._data.pop(key, None)

    @override
    def __contains__(self, key: object) -> bool:
        return key in self._data

    @override
    def __len__(self) -> int:
        return len(self._data)

    @override
    def items(self) -> Iterator[tuple[K, V]]:
        return iter(list(self._data.items()))

    @override
    def accessors(self) -> tuple[Callable[[K], V | None], Callable[[K, V], None]]:
        return self._data.get, self._data.__setitem__

    @override
    def snapshot(self) -> pa.Table:
        # Straight from the dict: no per-row tuples (checkpoints of large state run every epoch).
        return pa.Table.from_arrays(
            [self.key_codec.to_arrow(list(self._data)),
             self.value_codec.to_arrow(list(self._data.values()))],
            schema=snapshot_schema(self.key_codec, self.value_codec),
        )

    @override
    def clear(self) -> None:
        self._data.clear()
