"""One shared delta segment per worker and epoch: parts per key group, restore, and GC."""

from __future__ import annotations

import gc
import pickle
import random
import sqlite3
import threading
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from bytewax.recovery import init_db_dir

from flowlib.engine._incremental import Checkpoints, GroupStore
from flowlib.engine._keygroups import group_of
from flowlib.engine._shared_deltas import ROTATE_EPOCHS
from flowlib.engine._snapshots import read_record, record_chain
from state_backends import MemoryBackend
from tests.flowlib.engine.test_incremental import KEYS, VALUES, restore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
GROUPS = 4


class Worker:
    """The key groups of one step on one worker, as the engine drives them."""

    def __init__(self, root: Path, **kw: Any) -> None:
        cfg = Checkpoints(root, "f", GROUPS, incremental=True, **{"inline_rows": 0, **kw})
        self.stores = [GroupStore(cfg, "count", str, int, KEYS) for _ in range(GROUPS)]
        self.backends = [MemoryBackend(KEYS, VALUES) for _ in range(GROUPS)]
        self.which = group_of(KEYS, GROUPS)

    def put(self, key: str, value: int | None) -> None:
        b = self.backends[int(self.which(key))]
        if value is None:
            b.delete(key)
        else:
            b.put(key, value)

    def snapshot(self, groups: range | list[int] = range(GROUPS)) -> dict[int, bytes]:
        out = {}
        for g in groups:
            store, b = self.stores[g], self.backends[g]
            tracking = store.writes_deltas
            out[g] = store.snapshot(b, [], T0, T0, False, tracking=tracking)
            if store.writes_deltas and not tracking:
                b.track_changes()  # as KeyGroup does after the first base
        return out


def shared_files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("shared/*.deltas")}


def random_epochs(w: Worker, n: int, rnd: random.Random) -> list[dict[int, bytes]]:
    out = []
    for _ in range(n):
        for _ in range(60):
            k = f"k{rnd.randrange(400)}"
            w.put(k, None if rnd.random() < 0.2 else rnd.randrange(1000))
        out.append(w.snapshot())
    return out


def test_an_epoch_writes_one_segment_for_all_groups(tmp_path: Path) -> None:
    w = Worker(tmp_path, max_deltas=100, compact_ratio=100.0)
    rnd = random.Random(3)
    history = random_epochs(w, 5, rnd)
    assert len(shared_files(tmp_path)) == 1
    for g, data in history[-1].items():
        chain = read_record(data, "count")[1]
        assert chain[0].part is None and chain[0].path.endswith(".base")
        assert all(f.part is not None for f in chain[1:]) and len(chain) == 5
        assert restore(data, tmp_path) == dict(w.backends[g].items())
    # each epoch's parts are slices of the same segment, side by side
    parts = [read_record(d, "count")[1][-1] for d in history[-1].values()]
    assert len({(f.offset, f.size, f.crc) for f in parts}) == 1
    spans = sorted((f.part[0], f.part[1]) for f in parts if f.part is not None)
    assert all(a[1] == b[0] for a, b in pairwise(spans))


def test_changes_after_the_part_was_taken_get_a_segment_of_their_own(tmp_path: Path) -> None:
    w = Worker(tmp_path)
    for i in range(100):
        w.put(f"k{i}", i)
    w.snapshot()  # bases
    for i in range(100):
        w.put(f"k{i}", -i)
    first = w.snapshot([0, 1])  # bytewax snapshots groups 0 and 1 only: 2 and 3 hold parts
    late = next(k for k in (f"k{i}" for i in range(100)) if int(w.which(k)) == 2)
    w.put(late, 12345)  # group 2 changes again before it is snapshotted
    second = w.snapshot([2, 3])
    assert len(read_record(second[2], "count")[1]) == 3  # base, its part, its own delta
    assert len(read_record(second[3], "count")[1]) == 2  # base, its part
    for g, data in {**first, **second}.items():
        assert restore(data, tmp_path) == dict(w.backends[g].items())
    assert restore(second[2], tmp_path)[late] == 12345


def store_rows(root: Path, records: dict[int, bytes], epoch: int) -> None:
    """Play bytewax: store this epoch's records, keep only the newest per group."""
    db = sqlite3.connect(root / "part-0.sqlite3")
    with db:
        db.executemany(
            "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)",
            [("f.count", str(g), epoch, pickle.dumps(d)) for g, d in records.items()],
        )
        db.execute("DELETE FROM snaps WHERE snap_epoch < ?", (epoch,))
    db.close()


def test_gc_deletes_a_shared_file_once_no_chain_lists_it(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    w = Worker(tmp_path, max_deltas=4)
    rnd = random.Random(5)
    for epoch in range(1, 4 * ROTATE_EPOCHS):
        records = random_epochs(w, 1, rnd)[0]
        store_rows(tmp_path, records, epoch)
        listed = {f.path.rsplit("/", 1)[1] for d in records.values()
                  for f in record_chain(d, "count") if f.part is not None}
        assert listed <= shared_files(tmp_path)  # nothing listed was deleted
    # chains compact every <= 4 epochs: only the newest files can still be listed
    assert len(shared_files(tmp_path)) <= 2
    for g, data in records.items():
        assert restore(data, tmp_path) == dict(w.backends[g].items())


def test_gc_keeps_a_live_workers_files_and_deletes_a_gone_ones(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    other: dict[str, Any] = {}

    def run_other() -> None:  # another worker of the run: a thread, its own shared file
        w = Worker(tmp_path, max_deltas=100)
        random_epochs(w, 3, random.Random(9))
        other["worker"] = w  # alive: it holds its lock

    t = threading.Thread(target=run_other)
    t.start()
    t.join()
    theirs = shared_files(tmp_path)
    assert len(theirs) == 1
    mine = Worker(tmp_path, max_deltas=100)
    random_epochs(mine, 2 * ROTATE_EPOCHS + 2, random.Random(1))  # starts files: collects
    assert theirs <= shared_files(tmp_path)  # nothing stored lists them, but their writer runs
    del other["worker"]
    gc.collect()  # that worker ends: its lock goes
    random_epochs(mine, ROTATE_EPOCHS, random.Random(2))
    assert not theirs & shared_files(tmp_path)
    assert len(list(tmp_path.rglob("shared/*.lock"))) == 1  # the gone one's lock went too
