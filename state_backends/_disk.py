"""Plumbing of :class:`~state_backends.disk.DiskBackend`: the RocksDB store and the record format.

One RocksDB database per process and base directory is shared by every disk backend opened on
it (all key groups of all steps): each backend owns a 4-byte key prefix. One database instead of
one per key group because each RocksDB instance has its own memtables, caches and background
threads: 128 of them would multiply the memory the backend is meant to bound.

The database is scratch space, not a checkpoint: checkpoints are the Arrow snapshots the engine
stores, and a backend is rebuilt from one on resume. So the write-ahead log is off, and the
directory (``<base>/<pid>-<random>``) is removed when the process exits; directories left by
processes that died without cleaning up (``kill -9``) are removed by the next process that opens
the same base directory.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import msgspec
import rocksdict

from flowlib.codecs import Codec, describe
from flowlib.codecs._nodes import to_annotation

__all__ = ["STATE_DIR_ENV", "Records", "Store", "StoreConfig", "open_store"]

K = TypeVar("K")
V = TypeVar("V")

STATE_DIR_ENV: Final = "FLOWLIB_STATE_DIR"
"""Environment variable naming the default base directory of disk state."""

_PREFIX: Final = struct.Struct(">I")
_VALUE_LEN: Final = struct.Struct("<I")


@dataclass(frozen=True)
class StoreConfig:
    """Where the database lives and how much memory RocksDB itself may use."""

    base: Path
    block_cache_mb: int
    write_buffer_mb: int


class Store:
    """One RocksDB database (raw bytes keys and values) in its own directory under ``base``."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.pid = os.getpid()
        base = config.base
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale(base)
        self.path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        # Memory RocksDB may hold: write buffers (at most two of them) + block cache + bloom
        # filters and indexes of the open files (about 1.5 bytes per key).
        opts.set_write_buffer_size(config.write_buffer_mb << 20)
        opts.set_max_write_buffer_number(2)
        opts.set_max_background_jobs(2)
        opts.set_keep_log_file_num(1)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(rocksdict.Cache(config.block_cache_mb << 20))
        table.set_bloom_filter(10, False)
        opts.set_block_based_table_factory(table)
        self.db = rocksdict.Rdict(str(self.path), opts)
        write = rocksdict.WriteOptions()
        # The stub declares a method; the binding exposes a property. No WAL: the database is
        # rebuilt from a checkpoint after any crash.
        write.disable_wal = True  # type: ignore[assignment,method-assign]
        self.db.set_write_options(write)
        self._prefixes = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    def new_prefix(self) -> bytes:
        """A key prefix no other backend of this store uses."""
        with self._lock:  # bytewax workers are threads of one process
            return _PREFIX.pack(next(self._prefixes))

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        """Apply ``puts`` and ``deletes`` atomically (one write batch)."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        for k, v in puts:
            batch.put(k, v)
        for k in deletes:
            batch.delete(k)
        self.db.write(batch)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, as of the call (RocksDB
        iterators read a consistent view: writes made while iterating are not seen)."""
        read = rocksdict.ReadOptions()
        # Don't evict hot blocks for a full scan (snapshots, end of input). No iterate bounds:
        # the binding encodes them as typed (non-raw) keys.
        read.fill_cache(False)  # type: ignore[call-arg]
        for key, value in self.db.items(from_key=prefix, read_opt=read):
            assert isinstance(key, bytes)  # raw mode
            if not key.startswith(prefix):
                return
            yield key, value

    def drop(self, prefix: bytes) -> None:
        """Delete every key starting with ``prefix`` (one range tombstone)."""
        if self._closed:  # a backend collected after the store closed at exit
            return
        self.db.delete_range(prefix, _next_prefix(prefix))

    def size_on_disk(self) -> int:
        """Bytes used by the database's files now."""
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def close(self) -> None:
        """Close the database and remove its directory; the store is unusable afterwards."""
        if self._closed or self.pid != os.getpid():  # a forked child leaves its parent's alone
            return
        self._closed = True
        atexit.unregister(self.close)
        with contextlib.suppress(Exception):  # a database that failed mid-way still goes away
            self.db.close()
        del self.db
        shutil.rmtree(self.path, ignore_errors=True)
        with _STORES_LOCK:
            if _STORES.get(self.config) is self:
                del _STORES[self.config]


_STORES: dict[StoreConfig, Store] = {}
_STORES_LOCK: Final = threading.Lock()


def open_store(config: StoreConfig) -> Store:
    """The process's store for ``config``, opened on first use."""
    with _STORES_LOCK:
        store = _STORES.get(config)
        # A forked child must not share its parent's database handle (nor remove its files).
        if store is None or store.pid != os.getpid():
            store = _STORES[config] = Store(config)
        return store


def default_base() -> Path:
    """``$FLOWLIB_STATE_DIR``, else ``<system temp dir>/flowlib-state``."""
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / "flowlib-state"


def _next_prefix(prefix: bytes) -> bytes:
    return _PREFIX.pack(_PREFIX.unpack(prefix)[0] + 1)


def _remove_stale(base: Path) -> None:
    """Remove the directories of processes that no longer run."""
    for entry in base.iterdir():
        pid_text, sep, _ = entry.name.partition("-")
        if not sep or not pid_text.isdigit() or not entry.is_dir():
            continue
        pid = int(pid_text)
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


class Records(Generic[K, V]):
    """Bytes of one ``(key, value)`` record: MessagePack of the value, then of the key, then the
    value's length (4 bytes), so a lookup decodes the value alone.

    The database key is separate: the key codec's canonical ``key_bytes``, equal for equal keys.
    The key is stored again in the record because canonical bytes do not always decode to the
    original key (sets sorted, datetimes moved to UTC).

    MessagePack, typed by msgspec from the same description as the codecs, rather than the
    codec's JSON: NaN and infinities survive it (JSON writes null), and it is about as fast.
    """

    __slots__ = ("_dec_key", "_dec_value", "_enc", "_key_bytes")

    def __init__(self, key_codec: Codec[K], value_codec: Codec[V]) -> None:
        self._key_bytes = key_codec.key_bytes
        self._enc = msgspec.msgpack.Encoder().encode
        self._dec_key = _decoder(key_codec.annotation).decode
        self._dec_value = _decoder(value_codec.annotation).decode

    def db_key(self, prefix: bytes, key: K) -> bytes:
        return prefix + self._key_bytes(key)

    def encode(self, key: K, value: V) -> bytes:
        v = self._enc(value)
        return b"".join((v, self._enc(key), _VALUE_LEN.pack(len(v))))

    def value(self, record: bytes) -> V:
        (n,) = _VALUE_LEN.unpack_from(record, len(record) - 4)
        value: V = self._dec_value(memoryview(record)[:n])
        return value

    def item(self, record: bytes) -> tuple[K, V]:
        view = memoryview(record)
        (n,) = _VALUE_LEN.unpack_from(record, len(record) - 4)
        key: K = self._dec_key(view[n:-4])
        value: V = self._dec_value(view[:n])
        return key, value


def _decoder(annotation: object) -> msgspec.msgpack.Decoder[Any]:
    try:
        return _cached_decoder(annotation)
    except TypeError:  # unhashable annotation metadata: usable, just not cacheable
        return _new_decoder(annotation)


def _new_decoder(annotation: object) -> msgspec.msgpack.Decoder[Any]:
    # The annotation msgspec decodes with, as the codecs normalise it (flowlib's own aware/naive
    # datetime markers and so on).
    return msgspec.msgpack.Decoder(to_annotation(describe(annotation)))


_cached_decoder = cache(_new_decoder)
