"""MemoryBackend's change record: every way state changes is recorded, hot path included."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from flowlib.codecs import codec_for
from state_backends import MemoryBackend

KEYS, VALUES = codec_for(str), codec_for(int)


def changes(b: MemoryBackend[str, int]) -> tuple[dict[Any, Any], set[str]]:
    table, deleted = b.take_changes()
    rows = dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist(),
                    strict=True))
    return rows, set(deleted)


def test_untracked_accessors_are_the_dicts_own() -> None:
    b: MemoryBackend[str, int] = MemoryBackend(KEYS, VALUES)
    _, put = b.accessors()
    assert put == b._data.__setitem__  # no cost on the hot path unless tracking


def test_hot_path_put_clear_restore_and_apply_are_recorded() -> None:
    b: MemoryBackend[str, int] = MemoryBackend(KEYS, VALUES)
    b.put("old", 1)
    b.track_changes()
    _, put = b.accessors()
    put("a", 1)
    put("a", 2)  # the latest value is taken
    assert changes(b) == ({"a": 2}, set())
    b.clear()
    assert changes(b) == ({}, {"old", "a"})
    b.put("x", 1)
    b.take_changes()
    b.restore(pa.table({"key": pa.array(["y"], pa.large_string()), "value": [5]}))
    assert changes(b) == ({"y": 5}, {"x"})  # restore replaces: x is gone
    b.apply_changes(pa.table({"key": pa.array(["z"], pa.large_string()), "value": [7]}), ["y"])
    assert changes(b) == ({"z": 7}, {"y"})
    assert dict(b.items()) == {"z": 7}
