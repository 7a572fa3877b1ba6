"""Key-group snapshots as Arrow IPC bytes, with the metadata that identifies their schema."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

from flowlib import __version__
from flowlib._types import type_name
from flowlib.errors import StateSchemaError
from flowlib.state import StateBackend

__all__ = ["GroupSnapshot", "decode_snapshot", "encode_snapshot", "schema_fingerprint"]


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short hash of the Arrow schema (names and types, not metadata)."""
    return hashlib.sha256(schema.remove_metadata().serialize().to_pybytes()).hexdigest()[:16]


@dataclass(frozen=True)
class GroupSnapshot:
    table: pa.Table
    step: str
    eof_done: bool


def encode_snapshot(
    step: str, key_type: object, value_type: object, backend: StateBackend[object, object],
    eof_done: bool,
) -> bytes:
    table = backend.snapshot()
    meta = {
        b"flowlib.version": __version__.encode(),
        b"flowlib.step": step.encode(),
        b"flowlib.key_type": type_name(key_type).encode(),
        b"flowlib.value_type": type_name(value_type).encode(),
        b"flowlib.fingerprint": schema_fingerprint(table.schema).encode(),
        b"flowlib.eof_done": b"1" if eof_done else b"0",
    }
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_snapshot(data: bytes, step: str, expected: pa.Schema) -> GroupSnapshot:
    """Read a snapshot, refusing one whose schema differs from the flow's, naming the step."""
    table = pa.ipc.open_stream(data).read_all()
    meta = table.schema.metadata or {}
    found = schema_fingerprint(table.schema)
    if found != schema_fingerprint(expected):
        old = table.schema.remove_metadata()
        msg = (
            f"step {step!r}: checkpointed state has schema {old} "
            f"(key {meta.get(b'flowlib.key_type', b'?').decode()}, value "
            f"{meta.get(b'flowlib.value_type', b'?').decode()}) but the flow now declares "
            f"{expected}; start without the recovery directory or keep the old state type"
        )
        raise StateSchemaError(msg)
    return GroupSnapshot(table, step, meta.get(b"flowlib.eof_done") == b"1")
