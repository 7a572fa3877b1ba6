"""Key-group snapshots: Arrow IPC bytes with the metadata that identifies their schema.

Layout (version 2): ``FLWG`` magic, format version (1 byte), CRC-32 (``zlib.crc32``, u32
little-endian) of the payload, then the payload: two length-prefixed (u64 little-endian) Arrow
IPC streams, the state table (``key``, ``value``) and the timers table (``key``, ``time``,
``kind``). Version 1 is the same without the checksum; it is still read (its lengths are
checked, its bytes cannot be). A snapshot that is truncated, has trailing bytes or fails its
checksum is refused with a :class:`~flowlib.errors.FlowlibError` naming the step.

Schema metadata of the state table carries step id, type names, schema fingerprint, flowlib
version, the group's watermark and whether end of input was handled.

Incremental checkpoints (see ``_incremental``) use two more frames with the same layout:

- a *record* (``FLWG`` version 3), the bytes bytewax stores: three parts, the state table with
  no rows (its schema and metadata, the same every epoch), the timers, and JSON:
  ``{"chain": [[path, offset, size, crc, rows], ...], "watermark", "max_event_time",
  "eof_done", "writer"}``. The chain is the base then the deltas whose rows, applied in order,
  make the group's state;
- a *segment* (``FLWS`` version 1) in a file of the recovery directory: two parts, the state
  table (every row for a base, the rows written since the previous segment for a delta) and the
  deleted keys (a ``key`` column). A base is a file of its own; the deltas of a chain are
  appended to one file. The chain records each segment's file, offset, size and CRC-32, so a
  segment replaced by another valid one is refused too.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from flowlib import __version__
from flowlib._types import type_name
from flowlib.codecs import Codec, codec_for
from flowlib.errors import FlowlibError, StateSchemaError
from flowlib.time import TimerKind

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "INCREMENTAL_VERSIONS",
    "ChainFile",
    "GroupSnapshot",
    "chain_entry",
    "decode_snapshot",
    "IncrementalEncoder",
    "encode_snapshot",
    "forget_shared_segments",
    "merge_chain",
    "read_chain",
    "read_record",
    "record_chain",
    "record_files",
    "schema_fingerprint",
    "snapshot_version",
]

_MAGIC = b"FLWG"
_VERSION = 2
_RECORD_VERSION = 4  # an incremental record (4: chains may list parts of shared segments)
INCREMENTAL_VERSIONS = (3, 4)
"""The versions of records whose state is in files (:func:`snapshot_version`)."""
_READABLE = (1, 2, 3, 4)
_PARTS = {1: 2, 2: 2, 3: 3, 4: 3}  # parts of each version
_SEGMENT_MAGIC = b"FLWS"
_SEGMENT_VERSION = 1
_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short hash of the Arrow schema (names and types, not metadata)."""
    return _fingerprint(schema.remove_metadata())


@functools.lru_cache(maxsize=256)  # per key group and file otherwise; schemas are few
def _fingerprint(schema: pa.Schema) -> str:
    return hashlib.sha256(schema.serialize().to_pybytes()).hexdigest()[:16]


@dataclass(frozen=True)
class ChainFile:
    """One base or delta segment of an incremental checkpoint, as its record lists it."""

    path: str  # its file, relative to the recovery directory, "/"-separated
    offset: int  # where the segment starts in the file (deltas are appended to one file)
    size: int  # bytes
    crc: int  # CRC-32 of the payload, as in the segment's header
    rows: int  # rows plus deleted keys (of this group's part, for a shared segment)
    # A segment shared by the key groups of a worker (one per epoch, see _shared_deltas):
    # this group's rows are [row_start, row_end) of its table, its deleted keys
    # [del_start, del_end) of the deleted ones. None: the whole segment is this group's.
    part: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class GroupSnapshot:
    table: pa.Table  # the whole state, or the base of an incremental checkpoint
    timers: list[tuple[Any, datetime, TimerKind]]
    watermark: datetime | None
    max_event_time: datetime | None
    eof_done: bool
    # Incremental checkpoints: each delta's (written rows, deleted keys), to apply in order
    # after ``table``; and the files they came from (a resumed group continues this chain).
    deltas: list[tuple[pa.Table, list[Any]]] = field(default_factory=list)
    chain: tuple[ChainFile, ...] = ()


_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # end of an Arrow IPC stream


def _ipc(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream: schema message, record batches, end marker.

    Put together from the messages directly: the stream writer's set-up costs more than
    serialising a small table, and an incremental checkpoint writes several per key group.
    """
    import pyarrow as pa

    if any(pa.types.is_dictionary(f.type) for f in table.schema):  # needs dictionary batches
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        data: bytes = sink.getvalue().to_pybytes()
        return data
    return b"".join([
        table.schema.serialize(), *(b.serialize() for b in table.to_batches()), _EOS
    ])


def _timers_schema(key_codec: Codec[Any]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        pa.field("key", key_codec.arrow_type),
        pa.field("time", pa.timestamp("us", tz="UTC")),
        pa.field("kind", pa.string()),
    ])


def encode_snapshot(
    step: str,
    key_type: object,
    value_type: object,
    state: pa.Table,
    timers: list[tuple[Any, datetime, TimerKind]],
    watermark: datetime | None,
    max_event_time: datetime | None,
    eof_done: bool,
) -> bytes:
    meta = _meta(step, key_type, value_type, state.schema, watermark, max_event_time, eof_done)
    parts = [_ipc(state.replace_schema_metadata(meta)), _timers_ipc(key_type, timers)]
    return _frame(_MAGIC, _VERSION, parts)[0]


class IncrementalEncoder:
    """Writes the records and segments of one key group of a step: what does not change
    between epochs (schema messages, metadata) is serialised once."""

    def __init__(self, step: str, key_type: object, value_type: object, schema: pa.Schema):
        import pyarrow as pa

        self._key_type = key_type
        meta = _meta(step, key_type, value_type, schema, None, None, False)
        self.schema = schema  # of the state rows
        self._state_head = schema.with_metadata(meta).serialize().to_pybytes()
        self._deleted_schema = pa.schema([schema.field("key")])
        self._deleted_head = self._deleted_schema.serialize().to_pybytes()

    def segment(self, rows: pa.Table, deleted: pa.Array[Any]) -> tuple[bytes, int]:
        """A base or delta segment, and the CRC-32 of its payload."""
        import pyarrow as pa

        if not rows.schema.equals(self.schema):  # the batches go under the cached schema
            msg = f"state table of schema {rows.schema} where {self.schema} was expected"
            raise FlowlibError(msg)
        gone = self._deleted_head + _EOS  # no deletion: the common case
        if len(deleted):
            batch = pa.RecordBatch.from_arrays([deleted], schema=self._deleted_schema)
            gone = b"".join([self._deleted_head, batch.serialize(), _EOS])
        return _frame(_SEGMENT_MAGIC, _SEGMENT_VERSION, [
            b"".join([self._state_head, *(b.serialize() for b in rows.to_batches()), _EOS]),
            gone,
        ])

    def record(
        self,
        timers: list[tuple[Any, datetime, TimerKind]],
        watermark: datetime | None,
        max_event_time: datetime | None,
        eof_done: bool,
        chain: Sequence[bytes],
        writer: str,
    ) -> bytes:
        """An incremental record: what :func:`encode_snapshot` holds, the state being in
        ``chain`` (its segments, each as :func:`chain_entry` encodes it). ``writer``
        (``"<token>:<sequence number>"``) names the run that wrote it."""
        info = orjson.dumps({
            # the entries are encoded once, when written: a chain grows to tens of segments
            "chain": orjson.Fragment(b"[%b]" % b",".join(chain)),
            "watermark": watermark.isoformat() if watermark else None,
            "max_event_time": max_event_time.isoformat() if max_event_time else None,
            "eof_done": eof_done,
            "writer": writer,
        })
        parts = [self._state_head + _EOS, _timers_ipc(self._key_type, timers), info]
        return _frame(_MAGIC, _RECORD_VERSION, parts)[0]


def chain_entry(segment: ChainFile) -> bytes:
    """How a record lists ``segment`` (a JSON array, read back by :func:`read_record`)."""
    entry = [segment.path, segment.offset, segment.size, segment.crc, segment.rows]
    return orjson.dumps(entry if segment.part is None else [*entry, *segment.part])


def _frame(magic: bytes, version: int, parts: list[bytes]) -> tuple[bytes, int]:
    pieces: list[bytes] = []
    for p in parts:
        pieces += (_LEN.pack(len(p)), p)
    payload = b"".join(pieces)
    crc = zlib.crc32(payload)
    return b"".join((magic, bytes((version,)), _CRC.pack(crc), payload)), crc


def _meta(
    step: str,
    key_type: object,
    value_type: object,
    schema: pa.Schema,
    watermark: datetime | None,
    max_event_time: datetime | None,
    eof_done: bool,
) -> dict[bytes, bytes]:
    return {
        b"flowlib.version": __version__.encode(),
        b"flowlib.step": step.encode(),
        b"flowlib.key_type": type_name(key_type).encode(),
        b"flowlib.value_type": type_name(value_type).encode(),
        b"flowlib.fingerprint": schema_fingerprint(schema).encode(),
        b"flowlib.eof_done": b"1" if eof_done else b"0",
        b"flowlib.watermark": watermark.isoformat().encode() if watermark else b"",
        b"flowlib.max_event_time": max_event_time.isoformat().encode() if max_event_time else b"",
    }


def _timers_ipc(key_type: object, timers: list[tuple[Any, datetime, TimerKind]]) -> bytes:
    if not timers:  # the common case: no timers, the same bytes every time
        try:
            return _NO_TIMERS[key_type]
        except KeyError:
            data = _NO_TIMERS[key_type] = _timers_bytes(key_type, timers)
            return data
        except TypeError:  # an unhashable type annotation
            pass
    return _timers_bytes(key_type, timers)


_NO_TIMERS: dict[object, bytes] = {}


def _timers_bytes(key_type: object, timers: list[tuple[Any, datetime, TimerKind]]) -> bytes:
    import pyarrow as pa

    key_codec = codec_for(key_type)
    times = codec_for(datetime)
    timer_table = pa.Table.from_arrays(
        [
            key_codec.to_arrow([k for k, _, _ in timers]),
            times.to_arrow([t for _, t, _ in timers]),
            pa.array([kind for _, _, kind in timers], type=pa.string()),
        ],
        schema=_timers_schema(key_codec),
    )
    return _ipc(timer_table)


def snapshot_version(data: bytes) -> int | None:
    """The format version of snapshot bytes, or ``None`` when they are not a snapshot."""
    return data[4] if len(data) >= 5 and data[:4] == _MAGIC else None


def _corrupt(step: str, why: str) -> FlowlibError:
    return FlowlibError(
        f"checkpoint of step {step!r} is corrupt: {why}; restore the recovery directory from a "
        "backup or start without it"
    )


def _split(data: bytes, step: str) -> list[pa.Buffer]:
    version = snapshot_version(data)
    if version is None:
        raise _corrupt(step, "not a flowlib key-group snapshot (bad magic)")
    if version not in _READABLE:
        readable = ", ".join(map(str, _READABLE))
        raise _corrupt(
            step, f"unknown snapshot version {version} (newer flowlib?); this one reads {readable}"
        )
    return _unframe(data, step, version >= 2, _PARTS[version], "")


def _unframe(
    data: bytes, step: str, checked: bool, count: int, where: str, crc_expected: int | None = None
) -> list[pa.Buffer]:
    """The ``count`` parts of a frame whose 5-byte header was checked; ``where`` prefixes
    messages (``"file X: "``). The parts are views of ``data``, not copies."""
    import pyarrow as pa

    pos = 5
    if checked:
        if len(data) < pos + _CRC.size:
            raise _corrupt(step, f"{where}truncated ({len(data)} bytes)")
        (crc,) = _CRC.unpack_from(data, pos)
        pos += _CRC.size
        if crc_expected is not None and crc != crc_expected:
            raise _corrupt(step, f"{where}not the file the checkpoint recorded (other checksum)")
    buf = pa.py_buffer(data)
    payload = memoryview(data)[pos:]
    parts: list[pa.Buffer] = []
    at = 0
    for _ in range(count):
        if at + _LEN.size > len(payload):
            raise _corrupt(step, f"{where}truncated ({len(data)} bytes)")
        (n,) = _LEN.unpack_from(payload, at)
        at += _LEN.size
        if at + n > len(payload):
            raise _corrupt(step, f"{where}truncated ({len(data)} bytes, a part claims {n})")
        parts.append(buf.slice(pos + at, n))
        at += n
    if at != len(payload):
        raise _corrupt(step, f"{where}{len(payload) - at} unexpected trailing bytes")
    if checked and zlib.crc32(payload) != crc:
        raise _corrupt(step, f"{where}checksum mismatch")
    return parts


def read_state_table(data: bytes, step: str, root: Path | None = None) -> pa.Table:
    """The state table of a snapshot, metadata included (the metadata of the record for an
    incremental one, whose chain of files is read under the recovery directory ``root``)."""
    parts = _split(data, step)
    table = _read_ipc(parts[0], step)
    if len(parts) < 3:
        return table
    chain, _ = _info(parts[2], step)
    merged = merge_chain(read_chain(_need_root(root, step), chain, step), step)
    return merged.replace_schema_metadata(table.schema.metadata)


def record_chain(data: bytes, step: str) -> tuple[ChainFile, ...]:
    """The chain of a snapshot (empty for a full one), its Arrow parts left unread."""
    parts = _split(data, step)
    return _info(parts[2], step)[0] if len(parts) == 3 else ()


def record_files(data: bytes, step: str) -> tuple[set[str], str]:
    """The files a snapshot's chain lists and the writer of the record (``""`` for a full
    snapshot): what garbage collection reads of every stored record, so nothing else."""
    parts = _split(data, step)
    if len(parts) < 3:
        return set(), ""
    try:
        info = orjson.loads(parts[2].to_pybytes())
        return {entry[0] for entry in info["chain"]}, str(info.get("writer", ""))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise _corrupt(step, f"unreadable chain ({exc})") from None


def read_record(data: bytes, step: str) -> tuple[dict[bytes, bytes], tuple[ChainFile, ...]]:
    """The state metadata and the chain of a snapshot (an empty chain for a full snapshot)."""
    import pyarrow as pa

    parts = _split(data, step)
    try:
        meta = pa.ipc.open_stream(parts[0]).schema.metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise _corrupt(step, f"unreadable Arrow data ({exc})") from None
    if len(parts) < 3:
        return dict(meta), ()
    chain, info = _info(parts[2], step)
    return {**meta, b"flowlib.writer": str(info.get("writer", "")).encode()}, chain


def _need_root(root: Path | None, step: str) -> Path:
    if root is None:
        msg = f"step {step!r}: an incremental checkpoint is read from its recovery directory"
        raise FlowlibError(msg)
    return root


def _read_ipc(data: bytes | pa.Buffer, step: str, where: str = "") -> pa.Table:
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(data).read_all()
    except (pa.ArrowInvalid, OSError) as exc:  # only reachable for unchecksummed version 1
        raise _corrupt(step, f"{where}unreadable Arrow data ({exc})") from None


def _info(data: pa.Buffer, step: str) -> tuple[tuple[ChainFile, ...], dict[str, Any]]:
    """The chain of a record, and its other fields (watermark, eof_done, writer ...)."""
    try:
        info: dict[str, Any] = orjson.loads(data.to_pybytes())
        return tuple(_chain_file(*entry) for entry in info["chain"]), info
    except (ValueError, TypeError, KeyError) as exc:  # only with a colliding checksum
        raise _corrupt(step, f"unreadable chain ({exc})") from None


def _chain_file(path: str, offset: int, size: int, crc: int, rows: int, *part: int) -> ChainFile:
    if part and len(part) != 4:
        msg = f"a chain entry of {5 + len(part)} fields"
        raise ValueError(msg)
    shared = (part[0], part[1], part[2], part[3]) if part else None
    return ChainFile(path, offset, size, crc, rows, shared)


def read_chain(
    root: Path, chain: Sequence[ChainFile], step: str
) -> list[tuple[pa.Table, pa.Table]]:
    """``(rows, deleted keys)`` of each file of ``chain``, every file checked: present, of the
    recorded size and checksum. The tables are as stored (no schema evolution)."""
    out = []
    files: dict[str, bytes] = {}
    for f in chain:
        if f.part is not None:
            rows, deleted = _shared_segment(root, f, step)
            rs, re, ds, de = f.part
            out.append((rows.slice(rs, re - rs), deleted.slice(ds, de - ds)))
            continue
        if f.path not in files:
            files[f.path] = _read_file(root, f, step)
        whole = files[f.path]
        if len(whole) < f.offset + f.size:
            raise _corrupt(step, f"file {f.path}: truncated ({len(whole)} bytes, the "
                           f"checkpoint recorded {f.size} from byte {f.offset})")
        data = whole[f.offset : f.offset + f.size] if len(whole) != f.size else whole
        out.append(_segment_tables(data, f, step))
    return out


def _read_file(root: Path, f: ChainFile, step: str) -> bytes:
    try:
        return (root / f.path).read_bytes()
    except FileNotFoundError:
        raise _corrupt(step, f"file {f.path} is missing") from None


def _segment_tables(data: bytes, f: ChainFile, step: str) -> tuple[pa.Table, pa.Table]:
    """The tables of the segment ``f`` names (``data``: its bytes), checked."""
    where = f"file {f.path}: " if f.offset == 0 else f"file {f.path} at {f.offset}: "
    if data[:4] != _SEGMENT_MAGIC or data[4] != _SEGMENT_VERSION:
        raise _corrupt(step, f"{where}not a flowlib checkpoint segment (bad magic or version)")
    rows, deleted = _unframe(data, step, True, 2, where, crc_expected=f.crc)
    return _read_ipc(rows, step, where), _read_ipc(deleted, step, where)


# The key groups of a worker restore from the same shared segments: each is read and checked
# once (Arrow reads it without copying; the groups' tables are slices of it).
_SHARED: OrderedDict[tuple[Path, str, int, int, int], tuple[pa.Table, pa.Table]] = OrderedDict()
_SHARED_LIMIT = 256
_SHARED_LOCK = threading.Lock()


def forget_shared_segments() -> None:
    """Drop the shared segments kept for restores (the engine, once its groups restored)."""
    with _SHARED_LOCK:
        _SHARED.clear()


def _shared_segment(root: Path, f: ChainFile, step: str) -> tuple[pa.Table, pa.Table]:
    key = (root, f.path, f.offset, f.size, f.crc)
    with _SHARED_LOCK:
        hit = _SHARED.get(key)
        if hit is not None:
            _SHARED.move_to_end(key)
            return hit
    try:
        with open(root / f.path, "rb") as file:
            file.seek(f.offset)
            data = file.read(f.size)
    except FileNotFoundError:
        raise _corrupt(step, f"file {f.path} is missing") from None
    if len(data) < f.size:
        raise _corrupt(step, f"file {f.path}: truncated (the checkpoint recorded {f.size} "
                       f"bytes from byte {f.offset}, {len(data)} are there)")
    tables = _segment_tables(data, f, step)
    with _SHARED_LOCK:
        _SHARED[key] = tables
        if len(_SHARED) > _SHARED_LIMIT:
            _SHARED.popitem(last=False)
    return tables


def merge_chain(files: list[tuple[pa.Table, pa.Table]], step: str) -> pa.Table:
    """The state a chain describes, without codecs (for readers): the rows of every file, the
    last write of each key winning and deleted keys dropped."""
    import pyarrow as pa

    if len(files) == 1:
        return files[0][0]
    winner: dict[Any, tuple[int, int]] = {}
    for i, (rows, deleted) in enumerate(files):
        for j, k in enumerate(rows.column("key").to_pylist()):
            winner[_hashable(k)] = (i, j)
        for k in deleted.column("key").to_pylist():
            winner.pop(_hashable(k), None)
    picks: list[list[int]] = [[] for _ in files]
    for i, j in winner.values():
        picks[i].append(j)
    try:
        return pa.concat_tables(
            [rows.take(pa.array(p, pa.int64())).replace_schema_metadata(None)
             for (rows, _), p in zip(files, picks, strict=True)],
            promote_options="permissive",
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        msg = f"step {step!r}: the files of an incremental checkpoint do not fit together ({exc})"
        raise FlowlibError(msg) from None


def _hashable(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple((k, _hashable(x)) for k, x in v.items())
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v


def _conform(
    table: pa.Table,
    step: str,
    expected: pa.Schema,
    key_codec: Codec[Any],
    value_codec: Codec[Any] | None,
) -> tuple[pa.Table, Any]:
    """The one place a state table read from a checkpoint (a full snapshot, or a base or delta
    file of an incremental one) is checked against, and evolved to, the flow's schema.

    Returns the table and the conversion applied (``None`` when the schema was the same).
    """
    meta = table.schema.metadata or {}
    evolved = None
    if schema_fingerprint(table.schema) != schema_fingerprint(expected) and value_codec:
        # Incompatible changes were refused before any event ran (prepare_recovery_dir).
        from flowlib.engine._evolution import conversion  # needs pyarrow.compute: only here

        evolved = conversion(step, table.schema, key_codec.annotation, value_codec.annotation)
        table = evolved.table(table)
    if schema_fingerprint(table.schema) != schema_fingerprint(expected):
        old = table.schema.remove_metadata()
        msg = (
            f"step {step!r}: checkpointed state has schema {old} "
            f"(key {meta.get(b'flowlib.key_type', b'?').decode()}, value "
            f"{meta.get(b'flowlib.value_type', b'?').decode()}) but the flow now declares "
            f"{expected}; start without the recovery directory or keep the old state type"
        )
        raise StateSchemaError(msg)
    return table, evolved


def decode_snapshot(
    data: bytes,
    step: str,
    expected: pa.Schema,
    key_codec: Codec[Any],
    value_codec: Codec[Any] | None = None,
    root: Path | None = None,
) -> GroupSnapshot:
    """Read a snapshot; one whose schema differs from the flow's is converted to it when
    ``value_codec`` is given and the change is compatible (see ``_evolution``), else refused
    naming the step. An incremental record's files are read under the recovery directory
    ``root``; every file goes through the same schema check and evolution."""
    parts = _split(data, step)
    table = _read_ipc(parts[0], step)
    meta = table.schema.metadata or {}
    table, evolved = _conform(table, step, expected, key_codec, value_codec)
    timer_table = _read_ipc(parts[1], step)
    timer_keys = timer_table.column("key")
    if evolved is not None:
        timer_keys = evolved.keys(timer_keys)
    keys = key_codec.from_arrow(timer_keys)
    times = codec_for(datetime).from_arrow(timer_table.column("time"))
    kinds = cast(list[TimerKind], timer_table.column("kind").to_pylist())
    deltas: list[tuple[pa.Table, list[Any]]] = []
    chain: tuple[ChainFile, ...] = ()
    watermark = _time(meta.get(b"flowlib.watermark"))
    top = _time(meta.get(b"flowlib.max_event_time"))
    eof_done = meta.get(b"flowlib.eof_done") == b"1"
    if len(parts) == 3:
        chain, info = _info(parts[2], step)
        watermark, top = _time(info["watermark"]), _time(info["max_event_time"])
        eof_done = bool(info["eof_done"])
        for i, (rows, deleted) in enumerate(read_chain(_need_root(root, step), chain, step)):
            rows, file_evolved = _conform(rows, step, expected, key_codec, value_codec)
            if i == 0:
                table = rows
                continue
            gone = deleted.column("key")
            if file_evolved is not None:
                gone = file_evolved.keys(gone)
            deltas.append((rows, key_codec.from_arrow(gone)))
    return GroupSnapshot(
        table,
        list(zip(keys, times, kinds, strict=True)),
        watermark,
        top,
        eof_done,
        deltas,
        chain,
    )


def _time(raw: bytes | str | None) -> datetime | None:
    if not raw:
        return None
    return datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else raw)
