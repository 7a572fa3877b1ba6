"""Key-group snapshots: Arrow IPC bytes with the metadata that identifies their schema.

Layout (version 2): ``FLWG`` magic, format version (1 byte), CRC-32 (``zlib.crc32``, u32
little-endian) of the payload, then the payload: two length-prefixed (u64 little-endian) Arrow
IPC streams, the state table (``key``, ``value``) and the timers table (``key``, ``time``,
``kind``). Version 1 is the same without the checksum; it is still read (its lengths are
checked, its bytes cannot be). A snapshot that is truncated, has trailing bytes or fails its
checksum is refused with a :class:`~flowlib.errors.FlowlibError` naming the step.

Schema metadata of the state table carries step id, type names, schema fingerprint, flowlib
version, the group's watermark and whether end of input was handled.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import pyarrow as pa

from flowlib import __version__
from flowlib._types import type_name
from flowlib.codecs import Codec, codec_for
from flowlib.errors import FlowlibError, StateSchemaError
from flowlib.time import TimerKind

__all__ = [
    "GroupSnapshot",
    "decode_snapshot",
    "encode_snapshot",
    "schema_fingerprint",
    "snapshot_version",
]

_MAGIC = b"FLWG"
_VERSION = 2
_READABLE = (1, 2)
_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short hash of the Arrow schema (names and types, not metadata)."""
    return hashlib.sha256(schema.remove_metadata().serialize().to_pybytes()).hexdigest()[:16]


@dataclass(frozen=True)
class GroupSnapshot:
    table: pa.Table
    timers: list[tuple[Any, datetime, TimerKind]]
    watermark: datetime | None
    max_event_time: datetime | None
    eof_done: bool


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _timers_schema(key_codec: Codec[Any]) -> pa.Schema:
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
    meta = {
        b"flowlib.version": __version__.encode(),
        b"flowlib.step": step.encode(),
        b"flowlib.key_type": type_name(key_type).encode(),
        b"flowlib.value_type": type_name(value_type).encode(),
        b"flowlib.fingerprint": schema_fingerprint(state.schema).encode(),
        b"flowlib.eof_done": b"1" if eof_done else b"0",
        b"flowlib.watermark": watermark.isoformat().encode() if watermark else b"",
        b"flowlib.max_event_time": max_event_time.isoformat().encode() if max_event_time else b"",
    }
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
    parts = [_ipc(state.replace_schema_metadata(meta)), _ipc(timer_table)]
    payload = bytearray()
    for p in parts:
        payload += _LEN.pack(len(p))
        payload += p
    return _MAGIC + bytes([_VERSION]) + _CRC.pack(zlib.crc32(payload)) + bytes(payload)


def snapshot_version(data: bytes) -> int | None:
    """The format version of snapshot bytes, or ``None`` when they are not a snapshot."""
    return data[4] if len(data) >= 5 and data[:4] == _MAGIC else None


def _corrupt(step: str, why: str) -> FlowlibError:
    return FlowlibError(
        f"checkpoint of step {step!r} is corrupt: {why}; restore the recovery directory from a "
        "backup or start without it"
    )


def _split(data: bytes, step: str) -> tuple[bytes, bytes]:
    version = snapshot_version(data)
    if version is None:
        raise _corrupt(step, "not a flowlib key-group snapshot (bad magic)")
    if version not in _READABLE:
        readable = ", ".join(map(str, _READABLE))
        raise _corrupt(
            step, f"unknown snapshot version {version} (newer flowlib?); this one reads {readable}"
        )
    pos = 5
    if version >= 2:
        if len(data) < pos + _CRC.size:
            raise _corrupt(step, f"truncated ({len(data)} bytes)")
        (crc,) = _CRC.unpack_from(data, pos)
        pos += _CRC.size
    payload = memoryview(data)[pos:]
    parts: list[bytes] = []
    at = 0
    for _ in range(2):
        if at + _LEN.size > len(payload):
            raise _corrupt(step, f"truncated ({len(data)} bytes)")
        (n,) = _LEN.unpack_from(payload, at)
        at += _LEN.size
        if at + n > len(payload):
            raise _corrupt(step, f"truncated ({len(data)} bytes, a part claims {n})")
        parts.append(bytes(payload[at : at + n]))
        at += n
    if at != len(payload):
        raise _corrupt(step, f"{len(payload) - at} unexpected trailing bytes")
    if version >= 2 and zlib.crc32(payload) != crc:
        raise _corrupt(step, "checksum mismatch")
    return parts[0], parts[1]


def read_state_table(data: bytes, step: str) -> pa.Table:
    """The state table of a snapshot, metadata included."""
    state, _ = _split(data, step)
    return _read_ipc(state, step)


def _read_ipc(data: bytes, step: str) -> pa.Table:
    try:
        return pa.ipc.open_stream(data).read_all()
    except (pa.ArrowInvalid, OSError) as exc:  # only reachable for unchecksummed version 1
        raise _corrupt(step, f"unreadable Arrow data ({exc})") from None


def decode_snapshot(
    data: bytes, step: str, expected: pa.Schema, key_codec: Codec[Any]
) -> GroupSnapshot:
    """Read a snapshot, refusing one whose schema differs from the flow's, naming the step."""
    state_bytes, timer_bytes = _split(data, step)
    table = _read_ipc(state_bytes, step)
    meta = table.schema.metadata or {}
    if schema_fingerprint(table.schema) != schema_fingerprint(expected):
        old = table.schema.remove_metadata()
        msg = (
            f"step {step!r}: checkpointed state has schema {old} "
            f"(key {meta.get(b'flowlib.key_type', b'?').decode()}, value "
            f"{meta.get(b'flowlib.value_type', b'?').decode()}) but the flow now declares "
            f"{expected}; start without the recovery directory or keep the old state type"
        )
        raise StateSchemaError(msg)
    timer_table = _read_ipc(timer_bytes, step)
    keys = key_codec.from_arrow(timer_table.column("key"))
    times = codec_for(datetime).from_arrow(timer_table.column("time"))
    kinds = cast(list[TimerKind], timer_table.column("kind").to_pylist())
    return GroupSnapshot(
        table,
        list(zip(keys, times, kinds, strict=True)),
        _time(meta.get(b"flowlib.watermark")),
        _time(meta.get(b"flowlib.max_event_time")),
        meta.get(b"flowlib.eof_done") == b"1",
    )


def _time(raw: bytes | None) -> datetime | None:
    return datetime.fromisoformat(raw.decode()) if raw else None
