"""Incremental checkpoints: records naming base and delta files, compaction, GC, corruption."""

from __future__ import annotations

import gc
import pickle
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bytewax.recovery import init_db_dir

from flowlib import FlowlibError
from flowlib.codecs import codec_for
from flowlib.engine._group import KeyGroup, KeyGroupSpec
from flowlib.engine._incremental import Checkpoints, GroupStore
from flowlib.engine._snapshots import (
    decode_snapshot,
    read_record,
    read_state_table,
    snapshot_version,
)
from flowlib.processor import Context, Processor
from flowlib.state import snapshot_schema
from state_backends import MemoryBackend

KEYS, VALUES = codec_for(str), codec_for(int)
SCHEMA = snapshot_schema(KEYS, VALUES)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def config(root: Path, **kw: Any) -> Checkpoints:
    return Checkpoints(root, "f", 4, incremental=True, **{"inline_rows": 0, **kw})


def fresh() -> MemoryBackend[str, int]:
    b: MemoryBackend[str, int] = MemoryBackend(KEYS, VALUES)
    b.track_changes()
    return b


def restore(data: bytes, root: Path) -> dict[str, int]:
    snap = decode_snapshot(data, "count", SCHEMA, KEYS, VALUES, root)
    b: MemoryBackend[str, int] = MemoryBackend(KEYS, VALUES)
    b.restore(snap.table)
    for rows, deleted in snap.deltas:
        b.apply_changes(rows, deleted)
    return dict(b.items())


def snap(store: GroupStore, b: MemoryBackend[str, int]) -> bytes:
    return store.snapshot(b, [("k1", T0, "event")], T0, T0, False)


def epochs(root: Path, n: int, seed: int = 1, **kw: Any) -> list[tuple[bytes, dict[str, int]]]:
    """``n`` epochs of random writes and deletes over 300 keys: each record with its state."""
    rnd = random.Random(seed)
    store = GroupStore(config(root, **kw), "count", str, int, KEYS)
    b = fresh()
    out = []
    for _ in range(n):
        for _ in range(40):
            k = f"k{rnd.randrange(300)}"
            if rnd.random() < 0.2:
                b.delete(k)
            else:
                b.put(k, rnd.randrange(1000))
        out.append((snap(store, b), dict(b.items())))
    return out


def test_every_record_restores_its_epochs_state(tmp_path: Path) -> None:
    history = epochs(tmp_path, 30)
    kinds = sorted(Path(p).suffix for p in files(tmp_path))
    # a base file per chain; every epoch's delta appended to the worker's shared file, a new
    # one after ROTATE_EPOCHS deltas (22 here: 8 of the 30 epochs wrote a base)
    assert kinds.count(".base") == 8 and kinds.count(".deltas") == 2
    for data, state in history:
        assert snapshot_version(data) == 4
        assert restore(data, tmp_path) == state
        # the readers' merge (no codecs) agrees with the engine's
        table = read_state_table(data, "count", tmp_path)
        assert dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist(),
                        strict=True)) == state


def test_timers_and_watermark_are_in_the_record(tmp_path: Path) -> None:
    data, _ = epochs(tmp_path, 1)[0]
    s = decode_snapshot(data, "count", SCHEMA, KEYS, VALUES, tmp_path)
    assert s.timers == [("k1", T0, "event")]
    assert s.watermark == T0 and s.max_event_time == T0 and not s.eof_done


def test_chain_is_compacted_into_a_new_base(tmp_path: Path) -> None:
    history = epochs(tmp_path, 40, max_deltas=4)
    lengths = [len(read_record(d, "count")[1]) for d, _ in history]
    assert max(lengths) <= 5  # base + at most 4 deltas
    assert lengths.count(1) >= 40 // 5  # a new base at least every 5 epochs
    assert restore(history[-1][0], tmp_path) == history[-1][1]


def test_compaction_follows_the_deltas_size(tmp_path: Path) -> None:
    # 40 writes per epoch over ~250 live keys: deltas pass the base's size within ~8 epochs
    lengths = [len(read_record(d, "count")[1]) for d, _ in epochs(tmp_path, 40)]
    assert 1 < max(lengths) < 12 and lengths.count(1) >= 3


def test_deltas_hold_only_what_changed(tmp_path: Path) -> None:
    store = GroupStore(config(tmp_path), "count", str, int, KEYS)
    b = fresh()
    for i in range(1000):
        b.put(f"k{i}", i)
    snap(store, b)
    b.put("k1", -1)
    b.delete("k2")
    b.put("new", 5)
    b.delete("never-there")
    data = snap(store, b)
    chain = read_record(data, "count")[1]
    assert [f.rows for f in chain] == [1000, 4]  # 2 written, 2 deleted
    assert chain[1].size < chain[0].size / 10
    state = restore(data, tmp_path)
    assert state["k1"] == -1 and "k2" not in state and state["new"] == 5 and len(state) == 1000


def test_small_groups_keep_full_snapshots(tmp_path: Path) -> None:
    store = GroupStore(config(tmp_path, inline_rows=100), "count", str, int, KEYS)
    b = fresh()
    b.put("a", 1)
    assert snapshot_version(snap(store, b)) == 2
    assert not any(tmp_path.rglob("*.base"))
    for i in range(200):
        b.put(f"k{i}", i)
    assert snapshot_version(snap(store, b)) == 4
    for i in range(200):  # shrinks below half the threshold: full snapshots again
        b.delete(f"k{i}")
    data = snap(store, b)
    assert snapshot_version(data) == 2
    assert restore(data, tmp_path) == {"a": 1}


def test_resume_continues_the_chain_and_ignores_later_files(tmp_path: Path) -> None:
    history = epochs(tmp_path, 12, max_deltas=100, compact_ratio=100.0)
    data, state = history[5]  # a crash after epoch 11, resumed from epoch 5's record
    s = decode_snapshot(data, "count", SCHEMA, KEYS, VALUES, tmp_path)
    assert len(s.chain) == 6 and len(files(tmp_path)) == 2  # one base, one delta file
    store = GroupStore(config(tmp_path, max_deltas=100, compact_ratio=100.0), "count", str, int,
                       KEYS)
    b: MemoryBackend[str, int] = MemoryBackend(KEYS, VALUES)
    b.restore(s.table)
    for rows, deleted in s.deltas:
        b.apply_changes(rows, deleted)
    store.resume(s.chain)
    b.track_changes()
    assert dict(b.items()) == state
    b.put("after", 1)
    again = snap(store, b)
    chain = read_record(again, "count")[1]
    assert chain[:-1] == s.chain  # the resumed chain, then one new delta
    assert restore(again, tmp_path) == {**state, "after": 1}


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("which", [0, 1, -1], ids=["base", "first-delta", "last-delta"])
@pytest.mark.parametrize("damage", ["flip", "truncate", "missing", "replaced"])
def test_a_damaged_file_is_refused_naming_step_and_file(
    tmp_path: Path, which: int, damage: str
) -> None:
    history = epochs(tmp_path, 4, max_deltas=100, compact_ratio=100.0)
    data, _ = history[-1]
    chain = read_record(data, "count")[1]
    assert len(chain) == 4
    target = chain[which]
    path = tmp_path / target.path
    if damage == "flip":
        flip(path, len(path.read_bytes()) // 2)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-7])
    elif damage == "missing":
        path.unlink()
    else:  # another valid file under this name, padded to the recorded size
        other = next(f for f in chain if f.path != target.path)
        path.write_bytes((tmp_path / other.path).read_bytes())
    pattern = rf"checkpoint of step 'count' is corrupt: file {target.path}"
    with pytest.raises(FlowlibError, match=pattern):
        decode_snapshot(data, "count", SCHEMA, KEYS, VALUES, tmp_path)
    with pytest.raises(FlowlibError, match=pattern):
        read_state_table(data, "count", tmp_path)


def test_a_damaged_record_is_refused(tmp_path: Path) -> None:
    data = bytearray(epochs(tmp_path, 2)[-1][0])
    data[-3] ^= 0x01
    with pytest.raises(FlowlibError, match="checkpoint of step 'count' is corrupt: checksum"):
        decode_snapshot(bytes(data), "count", SCHEMA, KEYS, VALUES, tmp_path)


def store_rows(root: Path, rows: list[tuple[int, bytes]]) -> None:
    """Play bytewax: the stored records of group 0 of step ``count`` of flow ``f``."""
    db = sqlite3.connect(root / "part-0.sqlite3")
    with db:
        db.execute("DELETE FROM snaps")
        db.executemany(
            "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)",
            [("f.count", "0", e, pickle.dumps(d)) for e, d in rows],
        )
    db.close()


def grouped_store(root: Path, **kw: Any) -> GroupStore:
    store = GroupStore(config(root, **kw), "count", str, int, KEYS)
    store._group = "0"  # the rows above are group 0's; otherwise the first key decides
    return store


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in (root / "flowlib-state").rglob("*-*.*")}


def test_gc_deletes_only_files_no_stored_or_unstored_record_lists(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    store = grouped_store(tmp_path, max_deltas=2)
    b = fresh()
    records = []
    for epoch in range(1, 12):
        b.put(f"k{epoch}", epoch)
        records.append(snap(store, b))
        # bytewax stores each record and, committing, keeps the newest two
        store_rows(tmp_path, list(enumerate(records, 1))[-2:])
    listed = {f.path for r in records[-2:] for f in read_record(r, "count")[1]}
    assert listed <= files(tmp_path)  # nothing a stored record lists was deleted
    first = {f.path for f in read_record(records[0], "count")[1]}
    assert not first & files(tmp_path)  # the first chain is gone
    assert restore(records[-1], tmp_path) == dict(b.items())


def test_gc_keeps_files_of_records_bytewax_has_not_stored_yet(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    store = grouped_store(tmp_path, max_deltas=1)
    b = fresh()
    records = []
    for epoch in range(1, 9):
        b.put(f"k{epoch}", epoch)
        records.append(snap(store, b))  # never stored: every one may still be in flight
    for epoch, r in enumerate(records, 1):
        assert len(restore(r, tmp_path)) == epoch  # every file is still there


def test_gc_deletes_files_a_crashed_run_left_unlisted(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    b = fresh()
    crashed = grouped_store(tmp_path, max_deltas=100)
    for i in range(5):
        b.put(f"k{i}", i)
        snap(crashed, b)
    orphans = files(tmp_path)
    assert {Path(p).suffix for p in orphans} == {".base", ".deltas"}
    del crashed  # its worker ends: its lock on its shared file goes
    gc.collect()
    store = grouped_store(tmp_path, max_deltas=1)
    for epoch in range(1, 5):
        b.put(f"n{epoch}", epoch)
        data = snap(store, b)
        store_rows(tmp_path, [(epoch, data)])
    assert not orphans & files(tmp_path)
    assert restore(data, tmp_path) == dict(b.items())


def test_bytes_appended_after_a_record_do_not_matter(tmp_path: Path) -> None:
    # a crashed run appended a delta (here half of one) after the record a resume uses
    history = epochs(tmp_path, 5, max_deltas=100, compact_ratio=100.0)
    data, state = history[-1]
    delta_file = tmp_path / read_record(data, "count")[1][-1].path
    with delta_file.open("ab") as f:
        f.write(b"FLWS\x01" + bytes(50))
    assert restore(data, tmp_path) == state


class Count(Processor[str, str, str, int]):
    def process(self, ctx: Context[str, int, str], event: str) -> None:
        ctx.state.set(ctx.state.get(0) + 1)


def group(root: Path, resume: bytes | None = None) -> KeyGroup:
    cp = Checkpoints(root, "f", 1, incremental=True, inline_rows=10, compact_ratio=100.0)
    spec = KeyGroupSpec("count", Count(), str, int, MemoryBackend, None, late_wired=False,
                        fail=False, recovery=True, checkpoints=cp)
    return KeyGroup(spec, resume)


def test_a_key_group_records_changes_once_it_writes_deltas(tmp_path: Path) -> None:
    g = group(tmp_path)
    g.process([[("a", ["x"])]])
    assert snapshot_version(g.snapshot() or b"") == 2  # 1 key: a full snapshot, no recording
    assert isinstance(g.backend, MemoryBackend) and g.backend._dirty is None
    g.process([[(f"k{i}", ["x"]) for i in range(20)]])
    assert len(read_record(g.snapshot() or b"", "count")[1]) == 1  # a base; recording from now
    g.process([[("a", ["x", "x"]), ("new", ["x"])]])  # through the context's hot path
    data = g.snapshot() or b""
    chain = read_record(data, "count")[1]
    assert [f.rows for f in chain] == [21, 2]
    assert restore(data, tmp_path) == {"a": 3, "new": 1} | {f"k{i}": 1 for i in range(20)}
    resumed = group(tmp_path, data)  # continues the chain, recording from the start
    resumed.process([[("a", ["x"])]])
    again = resumed.snapshot() or b""
    assert read_record(again, "count")[1][:2] == chain
    assert restore(again, tmp_path)["a"] == 4
