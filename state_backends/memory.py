"""The in-memory backend: a dict per key group."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, TypeVar

from typing_extensions import override

from flowlib.codecs import Codec
from flowlib.state import StateBackend, snapshot_schema

if TYPE_CHECKING:
    import pyarrow as pa

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

    With change tracking on (incremental checkpoints), writes also record their key:

    >>> s.track_changes()
    >>> s.put("b", 2); s.delete("a")
    >>> changed, deleted = s.take_changes()
    >>> changed.to_pylist(), deleted
    ([{'key': 'b', 'value': 2}], ['a'])
    """

    supports_change_tracking: ClassVar[bool] = True

    def __init__(self, key_codec: Codec[K], value_codec: Codec[V]) -> None:
        super().__init__(key_codec, value_codec)
        self._data: dict[K, V] = {}
        # Keys written since the last take_changes(), with their value; None while not
        # tracking. Values are kept here so that taking the changes reads this small dict in
        # order, not the whole state at random (cache misses on large state).
        self._dirty: dict[K, V] | None = None
        # Keys deleted since then. A key deleted and written again is in both: the write wins
        # (it is in _dirty only if its last operation was a write), so put() stays one store.
        self._gone: set[K] = set()
        self._schema: pa.Schema | None = None

    @override
    def get(self, key: K) -> V | None:
        return self._data.get(key)

    @override
    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        if self._dirty is not None:
            self._dirty[key] = value

    @override
    def delete(self, key: K) -> None:
        self._data.pop(key, None)
        if self._dirty is not None:
            self._dirty.pop(key, None)
            self._gone.add(key)

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
        if self._dirty is None:
            return self._data.get, self._data.__setitem__
        data, dirty = self._data, self._dirty

        def put(key: K, value: V) -> None:  # the tracked hot path
            data[key] = value
            dirty[key] = value

        return data.get, put

    @override
    def track_changes(self) -> None:
        if self._dirty is None:
            self._dirty = {}

    @override
    def take_changes(self) -> tuple[pa.Table, list[K]]:
        import pyarrow as pa

        keys, values, deleted = self.take_change_lists()
        if self._schema is None:
            self._schema = snapshot_schema(self.key_codec, self.value_codec)
        table = pa.Table.from_arrays(
            [self.key_codec.to_arrow(keys), self.value_codec.to_arrow(values)],
            schema=self._schema,
        )
        return table, deleted

    @override
    def take_change_lists(self) -> tuple[list[K], list[V], list[K]]:
        dirty = self._dirty
        if dirty is None:
            msg = "changes taken before track_changes()"
            raise RuntimeError(msg)
        gone = self._gone
        deleted = [k for k in gone if k not in dirty] if gone else []
        out = list(dirty), list(dirty.values()), deleted
        dirty.clear()  # in place: the put of accessors() holds this dict
        gone.clear()
        return out

    @override
    def has_changes(self) -> bool:
        return bool(self._dirty or self._gone)

    @override
    def forget_changes(self) -> None:
        if self._dirty is not None:
            self._dirty.clear()
            self._gone.clear()

    @override
    def restore(self, table: pa.Table) -> None:
        keys = self.key_codec.from_arrow(table.column("key"))
        values = self.value_codec.from_arrow(table.column("value"))
        self.clear()  # in place: the callables of accessors() hold this dict
        self._data.update(zip(keys, values, strict=True))
        if self._dirty is not None:
            self._dirty.update(self._data)

    @override
    def apply_changes(self, changed: pa.Table, deleted: Sequence[K]) -> None:
        keys = self.key_codec.from_arrow(changed.column("key"))
        values = self.value_codec.from_arrow(changed.column("value"))
        self._data.update(zip(keys, values, strict=True))
        pop = self._data.pop
        for k in deleted:
            pop(k, None)
        if self._dirty is not None:
            self._dirty.update(zip(keys, values, strict=True))
            for k in deleted:
                self._dirty.pop(k, None)
            self._gone.update(deleted)

    @override
    def snapshot(self) -> pa.Table:
        import pyarrow as pa

        # Straight from the dict: no per-row tuples (checkpoints of large state run every epoch).
        return pa.Table.from_arrays(
            [self.key_codec.to_arrow(list(self._data)),
             self.value_codec.to_arrow(list(self._data.values()))],
            schema=snapshot_schema(self.key_codec, self.value_codec),
        )

    @override
    def clear(self) -> None:
        if self._dirty is not None:
            self._gone.update(self._data)
            self._dirty.clear()
        self._data.clear()
