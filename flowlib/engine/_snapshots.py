"""Key-group snapshots: Arrow IPC bytes with the metadata that identifies their schema.

Layout: ``FLWG`` magic, format version (1 byte), then two length-prefixed (u64 little-endian)
Arrow IPC streams: the state table (``key``, ``value``) and the timers table (``key``, ``time``,
``kind``). Schema metadata of the state table carries step id, type names, schema fingerprint,
flowlib version, the group's watermark and whether end of input was handled.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import pyarrow as pa

from flowlib import __version__
from flowlib._types import type_name
from flowlib.codecs import Codec, codec_for
from flowlib.errors import FlowlibError, StateSchemaError
from flowlib.time import TimerKind

__all__ = ["GroupSnapshot", "decode_snapshot", "encode_snapshot", "schema_fingerprint"]

_MAGIC = b"FLWG"
_VERSION = 1
_LEN = struct.Struct("<Q")


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
    out = bytearray(_MAGIC)
    out.append(_VERSION)
    for p in parts:
        out += _LEN.pack(len(p))
        out += p
    return bytes(out)


def _split(data: bytes, step: str) -> tuple[bytes, bytes]:
    if data[:4] != _MAGIC or len(data) < 5 or data[4] != _VERSION:
        msg = f"step {step!r}: checkpoint is not a flowlib key-group snapshot (version 1)"
        raise FlowlibError(msg)
    parts: list[bytes] = []
    pos = 5
    for _ in range(2):
        (n,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        parts.append(data[pos : pos + n])
        pos += n
    return parts[0], parts[1]


def read_state_table(data: bytes, step: str) -> pa.Table:
    """The state table of a snapshot, metadata included."""
    state, _ = _split(data, step)
    return pa.ipc.open_stream(state).read_all()


def decode_snapshot(
    data: bytes, step: str, expected: pa.Schema, key_codec: Codec[Any]
) -> GroupSnapshot:
    """Read a snapshot, refusing one whose schema differs from the flow's, naming the step."""
    state_bytes, timer_bytes = _split(data, step)
    table = pa.ipc.open_stream(state_bytes).read_all()
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
    timer_table = pa.ipc.open_stream(timer_bytes).read_all()
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
