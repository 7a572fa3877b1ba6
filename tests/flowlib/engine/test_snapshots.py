"""Key-group snapshot frames: a checksum makes a damaged checkpoint refuse to restore."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from flowlib import FlowlibError
from flowlib.codecs import codec_for
from flowlib.engine._snapshots import (
    decode_snapshot,
    encode_snapshot,
    read_state_table,
    snapshot_version,
)
from flowlib.state import snapshot_schema

KEYS, VALUES = codec_for(str), codec_for(int)
SCHEMA = snapshot_schema(KEYS, VALUES)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def snapshot() -> bytes:
    state = pa.Table.from_arrays(
        [KEYS.to_arrow(["a", "b", "c"]), VALUES.to_arrow([1, 2, 3])], schema=SCHEMA
    )
    return encode_snapshot("count", str, int, state, [("a", T0, "event")], T0, T0, False)


def as_version_1(data: bytes) -> bytes:
    """The same snapshot in the version-1 frame (no checksum), as flowlib 0.x wrote it."""
    return data[:4] + bytes([1]) + data[9:]


def test_round_trip_and_version() -> None:
    data = snapshot()
    assert snapshot_version(data) == 2
    snap = decode_snapshot(data, "count", SCHEMA, KEYS)
    assert snap.table.column("key").to_pylist() == ["a", "b", "c"]
    assert snap.timers == [("a", T0, "event")]
    assert snap.watermark == T0


def test_version_1_snapshots_are_still_read() -> None:
    old = as_version_1(snapshot())
    assert snapshot_version(old) == 1
    assert decode_snapshot(old, "count", SCHEMA, KEYS).table.num_rows == 3


@pytest.mark.parametrize("where", [9, 20, 200, -40, -1])
def test_a_flipped_bit_is_refused(where: int) -> None:
    data = bytearray(snapshot())
    data[where] ^= 0x10
    with pytest.raises(FlowlibError, match=r"checkpoint of step 'count' is corrupt"):
        decode_snapshot(bytes(data), "count", SCHEMA, KEYS)


def test_a_flipped_payload_byte_is_a_checksum_mismatch() -> None:
    data = bytearray(snapshot())
    data[-40] ^= 0x01  # inside the timers stream: lengths still agree
    with pytest.raises(FlowlibError, match=r"'count' is corrupt: checksum mismatch"):
        read_state_table(bytes(data), "count")


def test_a_flipped_checksum_is_a_checksum_mismatch() -> None:
    data = bytearray(snapshot())
    data[6] ^= 0xFF
    with pytest.raises(FlowlibError, match=r"'count' is corrupt: checksum mismatch"):
        decode_snapshot(bytes(data), "count", SCHEMA, KEYS)


@pytest.mark.parametrize("keep", [0, 3, 5, 7, 9, 16, 100, -1])
def test_truncation_is_refused(keep: int) -> None:
    data = snapshot()
    cut = data[:keep]
    with pytest.raises(FlowlibError, match=r"step 'count' is corrupt: (truncated|not a flowlib)"):
        decode_snapshot(cut, "count", SCHEMA, KEYS)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(FlowlibError, match=r"'count' is corrupt: 3 unexpected trailing bytes"):
        decode_snapshot(snapshot() + b"xyz", "count", SCHEMA, KEYS)


def test_unknown_version_is_named() -> None:
    data = bytearray(snapshot())
    data[4] = 9
    with pytest.raises(FlowlibError, match=r"unknown snapshot version 9"):
        decode_snapshot(bytes(data), "count", SCHEMA, KEYS)


def test_truncated_version_1_is_refused() -> None:
    old = as_version_1(snapshot())
    with pytest.raises(FlowlibError, match=r"'count' is corrupt: truncated"):
        decode_snapshot(old[:-10], "count", SCHEMA, KEYS)
    # a version-1 frame whose bytes were damaged inside an Arrow stream is still refused
    (n,) = struct.unpack_from("<Q", old, 5)
    damaged = bytearray(old)
    damaged[13:21] = b"\xff" * 8
    with pytest.raises(FlowlibError, match=r"'count' is corrupt"):
        read_state_table(bytes(damaged), "count")
    assert n > 0
