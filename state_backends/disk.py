"""The on-disk backend: keyed state in RocksDB, for state larger than memory."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import msgspec
from typing_extensions import override

from flowlib.codecs import Codec, EncodeError
from flowlib.state import StateBackend, snapshot_schema
from state_backends._disk import (
    STATE_DIR_ENV,
    Records,
    Store,
    StoreConfig,
    default_base,
    open_store,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["STATE_DIR_ENV", "DiskBackend", "DiskOptions"]

K = TypeVar("K")
V = TypeVar("V")

_MISS: Final = object()
_GONE: Final = object()
"""Cached marker of a key known to have no value (deleted, or looked up and absent)."""

_CHUNK: Final = 65_536
"""Rows converted per step by snapshot and restore: bounds the Python objects alive at once."""


@dataclass(frozen=True)
class DiskOptions:
    """Settings of :class:`DiskBackend`; an instance is itself a state factory.

    ``path``: base directory of the database (default ``$FLOWLIB_STATE_DIR``, else the system
    temp dir); each process uses its own subdirectory there and removes it at exit. Put it on a
    disk with room for the state, not on a RAM-backed ``tmpfs``.
    ``cache_entries``: decoded values kept in memory per key group (the write-back cache).
    ``block_cache_mb`` and ``write_buffer_mb``: RocksDB's own memory, shared by all key groups
    of the process that use the same settings.

    >>> from flowlib.codecs import codec_for
    >>> factory = DiskBackend.at(cache_entries=1000)
    >>> s = factory(codec_for(str), codec_for(int))
    >>> s.put("a", 1)
    >>> s.get("a")
    1
    """

    path: Path | None = None
    cache_entries: int = 4096
    block_cache_mb: int = 32
    write_buffer_mb: int = 16

    def __post_init__(self) -> None:
        for name, low in (("cache_entries", 16), ("block_cache_mb", 1), ("write_buffer_mb", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                msg = f"DiskOptions.{name} must be an int >= {low}, got {value!r}"
                raise ValueError(msg)

    def __call__(self, key_codec: Codec[K], value_codec: Codec[V]) -> DiskBackend[K, V]:
        return DiskBackend(key_codec, value_codec, self)

    def store_config(self) -> StoreConfig:
        base = self.path if self.path is not None else default_base()
        return StoreConfig(Path(base).resolve(), self.block_cache_mb, self.write_buffer_mb)


class DiskBackend(StateBackend[K, V]):
    """Keyed state in RocksDB (through ``rocksdict``), with a bounded write-back cache.

    Choose it per step: ``keyed.process(op, state=DiskBackend)``, or with settings,
    ``state=DiskBackend.at("/data/flowlib-state", cache_entries=10_000)``.

    Values are written to disk when the cache is full, before snapshots and before
    :meth:`items`/``len``; a value object stays shared with the cache until then. So state must
    be written with ``ctx.state.set(value)`` (:meth:`put`) after changing it: a value mutated in
    place without ``set()`` may or may not persist. The database is scratch space: checkpoints
    are Arrow snapshots like every backend's, and :meth:`restore` rebuilds the state from one.

    >>> from flowlib.codecs import codec_for
    >>> s = DiskBackend(codec_for(tuple[str, int]), codec_for(float))
    >>> s.put(("a", 1), 0.5)
    >>> s.put(("b", 2), float("nan"))
    >>> s.get(("a", 1)), len(s), ("b", 2) in s
    (0.5, 2, True)
    >>> s.snapshot().num_rows
    2

    It records changed keys for incremental checkpoints:

    >>> s.track_changes()
    >>> s.put(("c", 3), 1.0); s.delete(("a", 1))
    >>> changed, deleted = s.take_changes()
    >>> changed.column("value").to_pylist(), deleted
    ([1.0], [('a', 1)])
    """

    supports_change_tracking: ClassVar[bool] = True

    def __init__(
        self, key_codec: Codec[K], value_codec: Codec[V], options: DiskOptions | None = None
    ) -> None:
        super().__init__(key_codec, value_codec)
        self.options = options if options is not None else DiskOptions()
        self._store: Store = open_store(self.options.store_config())
        self._prefix = self._store.new_prefix()
        self._records: Records[K, V] = Records(key_codec, value_codec)
        self._cap = self.options.cache_entries
        # Decoded values (or _GONE) of recently used keys, oldest first; holds every dirty key.
        self._cache: dict[K, Any] = {}
        # Keys changed since the last flush -> whether they were on disk before (None: unknown).
        self._dirty: dict[K, bool | None] = {}
        # Keys on disk as of the last flush.
        self._on_disk = 0
        # Keys written or deleted since the last take_changes(); None while not tracking.
        self._changed: set[K] | None = None
        # The keys of a dropped backend are deleted; at exit the whole directory goes instead.
        drop = weakref.finalize(self, self._store.drop, self._prefix)
        drop.atexit = False

    @staticmethod
    def at(
        path: str | Path | None = None,
        *,
        cache_entries: int = DiskOptions.cache_entries,
        block_cache_mb: int = DiskOptions.block_cache_mb,
        write_buffer_mb: int = DiskOptions.write_buffer_mb,
    ) -> DiskOptions:
        """A state factory with these settings (see :class:`DiskOptions`)."""
        return DiskOptions(
            Path(path) if path is not None else None, cache_entries, block_cache_mb,
            write_buffer_mb,
        )

    @property
    def directory(self) -> Path:
        """The database directory (shared with the process's other disk backends there)."""
        return self._store.path

    # --- reads and writes ----------------------------------------------------------------------

    @override
    def get(self, key: K) -> V | None:
        value = self._cache.get(key, _MISS)
        if value is _MISS:
            value = self._load(key)
        return None if value is _GONE else value

    def _load(self, key: K) -> Any:
        raw = self._store.get(self._records.db_key(self._prefix, key))
        value = _GONE if raw is None else self._records.value(raw)
        self._cache[key] = value
        if len(self._cache) > self._cap:
            self._evict()
        return value

    @override
    def put(self, key: K, value: V) -> None:
        self._change(key, value)

    @override
    def delete(self, key: K) -> None:
        self._change(key, _GONE)

    def _change(self, key: K, value: Any) -> None:
        cache = self._cache
        if self._changed is not None:
            self._changed.add(key)
        if key not in self._dirty:
            old = cache.get(key, _MISS)
            self._dirty[key] = None if old is _MISS else old is not _GONE
        cache[key] = value
        if len(cache) > self._cap:
            self._evict()

    @override
    def __contains__(self, key: object) -> bool:
        value = self._cache.get(key, _MISS)  # type: ignore[arg-type]
        if value is _MISS:
            value = self._load(key)  # type: ignore[arg-type]
        return value is not _GONE

    @override
    def __len__(self) -> int:
        self.flush()
        return self._on_disk

    @override
    def approximate_len(self) -> int:
        """Keys on disk as of the last flush: without flushing (no I/O, and no change to the
        cache the step's thread is using), so behind by at most ``cache_entries`` keys."""
        return self._on_disk

    @override
    def items(self) -> Iterator[tuple[K, V]]:
        self.flush()
        item = self._records.item
        for _, record in self._store.scan(self._prefix):
            yield item(record)

    @override
    def accessors(self) -> tuple[Callable[[K], V | None], Callable[[K, V], None]]:
        return self.get, self._change

    # --- cache -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every changed value to the database (the cache keeps them)."""
        dirty = self._dirty
        if not dirty:
            return
        records, prefix, cache, lookup = self._records, self._prefix, self._cache, self._store.get
        puts: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        count = self._on_disk
        for k, existed in dirty.items():
            value = cache[k]
            db_key = records.db_key(prefix, k)
            if existed is None:
                # A blind write (the key was not read first): whether it existed keeps len()
                # exact and O(1), which incremental checkpoints ask for every epoch. Cheap for
                # new keys: the bloom filters answer without reading a block.
                existed = lookup(db_key) is not None
            if value is _GONE:
                if existed:
                    deletes.append(db_key)
                    count -= 1
                continue
            try:
                puts.append((db_key, records.encode(k, value)))
            except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
                msg = (
                    f"state of key {k!r}: cannot store {type(value).__name__} value "
                    f"{value!r:.200} as {self.value_codec!r}: {exc}"
                )
                raise EncodeError("$", msg) from None
            if not existed:
                count += 1
        self._store.write(puts, deletes)
        self._on_disk = count
        dirty.clear()

    def _evict(self) -> None:
        """Flush, then forget the oldest quarter of the cache."""
        self.flush()
        cache = self._cache
        for k in list(itertools.islice(cache, len(cache) - self._cap * 3 // 4)):
            del cache[k]

    # --- snapshots ---------------------------------------------------------------------------

    @override
    def snapshot(self) -> pa.Table:
        import pyarrow as pa

        self.flush()
        schema = snapshot_schema(self.key_codec, self.value_codec)
        item = self._records.item
        tables = []
        records = (r for _, r in self._store.scan(self._prefix))
        while chunk := [item(r) for r in itertools.islice(records, _CHUNK)]:
            keys, values = zip(*chunk, strict=True)
            tables.append(pa.Table.from_arrays(
                [self.key_codec.to_arrow(list(keys)), self.value_codec.to_arrow(list(values))],
                schema=schema,
            ))
        return pa.concat_tables(tables) if tables else schema.empty_table()

    @override
    def restore(self, table: pa.Table) -> None:
        """Replace all state with ``table``'s rows (keys are unique, as in any snapshot)."""
        self.clear()
        records, prefix = self._records, self._prefix
        for start in range(0, table.num_rows, _CHUNK):
            part = table.slice(start, _CHUNK)
            keys = self.key_codec.from_arrow(part.column("key"))
            values = self.value_codec.from_arrow(part.column("value"))
            self._store.write(
                [(records.db_key(prefix, k), records.encode(k, v))
                 for k, v in zip(keys, values, strict=True)],
                [],
            )
            if self._changed is not None:
                self._changed.update(keys)
        self._on_disk = table.num_rows

    @override
    def clear(self) -> None:
        if self._changed is not None:
            self._changed.update(k for k, _ in self.items())
        self._store.drop(self._prefix)
        self._cache.clear()
        self._dirty.clear()
        self._on_disk = 0

    # --- change tracking (incremental checkpoints) -----------------------------------------

    @override
    def track_changes(self) -> None:
        if self._changed is None:
            self._changed = set()

    @override
    def has_changes(self) -> bool:
        return bool(self._changed)

    @override
    def take_changes(self) -> tuple[pa.Table, list[K]]:
        import pyarrow as pa

        keys, values, deleted = self.take_change_lists()
        table = pa.Table.from_arrays(
            [self.key_codec.to_arrow(keys), self.value_codec.to_arrow(values)],
            schema=snapshot_schema(self.key_codec, self.value_codec),
        )
        return table, deleted

    @override
    def take_change_lists(self) -> tuple[list[K], list[V], list[K]]:
        if self._changed is None:
            msg = "changes taken before track_changes()"
            raise RuntimeError(msg)
        keys: list[K] = []
        values: list[V] = []
        deleted: list[K] = []
        for k in self._changed:
            value = self._cache.get(k, _MISS)
            if value is _MISS:
                value = self._load(k)
            if value is _GONE:
                deleted.append(k)
            else:
                keys.append(k)
                values.append(value)
        self._changed.clear()
        return keys, values, deleted
