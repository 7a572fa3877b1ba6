"""Keyed state past memory: 10,000,000 keys in the disk backend under a memory cap.

Puts ``--keys`` keys (default 10,000,000) through the ``DiskBackend`` API, spread over 128 key
groups exactly as the engine does (``xxh3_64(key_bytes) % 128``, one backend per group, default
settings), then snapshots every group one at a time, as a checkpoint does. Reports the process's
peak resident memory against the cap, and the per-operation cost when the state holds 100, 10K,
1M and 10M keys: inserting new keys, and a read-modify-write (``get`` then ``put``, what
``ctx.state.get()`` / ``set()`` do) of keys drawn uniformly from all keys (the cache's worst
case). ``--memory`` instead measures the in-memory backend's resident memory per key, for
comparison. ``--compare`` measures raw RocksDB (rocksdict) against LMDB (the choice of engine).

    python bench/state_scale.py                  # full size: bench/results/state_scale.json
    python bench/state_scale.py --keys 1000000   # smaller: bench/work/results/state_scale.json
    python bench/state_scale.py --compare [--keys N]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import xxhash

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._benchlib import GcWatch, Target, write_result
from flowlib.codecs import codec_for
from flowlib.state import StateBackend
from state_backends import DiskBackend, MemoryBackend

FULL = 10_000_000
GROUPS = 128
CAP_MB = 512
"""Peak resident memory allowed for 10M keys (Python, pyarrow and flowlib loaded included)."""
MARKS = (100, 10_000, 1_000_000, 10_000_000)
OPS = 20_000


@dataclass
class Session:
    """A typical per-key state: a few counters and a timestamp."""

    count: int
    bytes: int
    last: datetime


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def key(i: int) -> str:
    return f"user-{i:010d}"


def status_mb() -> dict[str, float]:
    """Resident memory now and at peak (VmHWM), and its anonymous and file-backed parts."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[name] = int(value.split()[0]) / 1024
    return out


class Groups:
    """128 backends and the engine's key -> group mapping."""

    def __init__(self, factory: Callable[..., StateBackend[str, Session]]) -> None:
        self.kc, vc = codec_for(str), codec_for(Session)
        self.backends = [factory(self.kc, vc) for _ in range(GROUPS)]

    def of(self, k: str) -> StateBackend[str, Session]:
        return self.backends[xxhash.xxh3_64_intdigest(self.kc.key_bytes(k)) % GROUPS]


def insert(groups: Groups, start: int, stop: int) -> float:
    t = time.perf_counter()
    for i in range(start, stop):
        k = key(i)
        groups.of(k).put(k, Session(1, i, T0))
    return time.perf_counter() - t


def update(groups: Groups, n_keys: int, ops: int, rng: random.Random) -> float:
    """Seconds per read-modify-write of a uniformly drawn existing key."""
    picks = [key(rng.randrange(n_keys)) for _ in range(ops)]
    t = time.perf_counter()
    for k in picks:
        b = groups.of(k)
        s = b.get(k)
        assert s is not None, k
        s.count += 1
        b.put(k, s)
    return (time.perf_counter() - t) / ops


def scale(n: int) -> dict[str, Any]:
    rng = random.Random(7)
    groups = Groups(DiskBackend)
    base = status_mb()
    marks: list[dict[str, Any]] = []
    done = 0
    start = time.perf_counter()
    for mark in [m for m in MARKS if m < n] + [n]:
        with GcWatch() as gcw:
            seconds = insert(groups, done, mark)
        per_insert = seconds / (mark - done) * 1e6
        done = mark
        per_update = update(groups, mark, min(OPS, max(mark, 1000)), rng) * 1e6
        mem = status_mb()
        print(f"{mark:>11,} keys: insert {per_insert:6.2f} us/key, read-modify-write "
              f"{per_update:6.2f} us/op, RSS {mem['VmRSS']:.0f} MB (peak {mem['VmHWM']:.0f}), "
              f"GC {gcw.seconds:.1f} of {seconds:.1f} s inserting",
              flush=True)
        marks.append({"keys": mark, "insert_us": per_insert, "update_us": per_update,
                      "insert_gc_seconds": gcw.seconds, "insert_seconds": seconds, **mem})
    load_s = time.perf_counter() - start
    assert sum(len(b) for b in groups.backends) == n
    t = time.perf_counter()
    rows = 0
    for b in groups.backends:  # a checkpoint: one group's table alive at a time
        rows += b.snapshot().num_rows
    snap_s = time.perf_counter() - t
    assert rows == n
    end = status_mb()
    disk = groups.backends[0]
    assert isinstance(disk, DiskBackend)
    size = disk._store.size_on_disk()
    print(f"snapshot of all groups: {snap_s:.1f} s; peak RSS {end['VmHWM']:.0f} MB; "
          f"database {size / 2**20:.0f} MB", flush=True)
    return {"keys": n, "groups": GROUPS, "baseline_mb": base, "marks": marks,
            "load_seconds": load_s, "snapshot_all_groups_seconds": snap_s, "end_mb": end,
            "peak_rss_mb": end["VmHWM"], "database_mb": size / 2**20,
            "options": {"cache_entries": 4096, "block_cache_mb": 32, "write_buffer_mb": 16}}


def memory(n: int) -> dict[str, Any]:
    """Resident memory of the in-memory backend holding ``n`` keys (run in its own process)."""
    gc.collect()
    base = status_mb()["VmRSS"]
    groups = Groups(MemoryBackend)
    insert(groups, 0, n)
    grown = status_mb()["VmRSS"] - base
    return {"keys": n, "rss_growth_mb": grown, "bytes_per_key": grown * 2**20 / n}


# --- the choice of engine: RocksDB (rocksdict) against LMDB, raw ---------------------------------


def compare(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for engine in ("rocksdb", "lmdb"):
        proc = subprocess.run(
            [sys.executable, __file__, "--engine", engine, "--keys", str(n)],
            capture_output=True, text=True, check=True,
        )
        out[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(engine, json.dumps(out[engine]), flush=True)
    return out


def engine_run(engine: str, n: int) -> dict[str, Any]:
    """Per-op put/get, bulk load, scan and size of one engine, with flowlib's key bytes and
    the disk backend's record encoding (MessagePack typed by msgspec)."""
    kc = codec_for(str)
    enc = msgspec.msgpack.Encoder().encode
    dec = msgspec.msgpack.Decoder(Session).decode
    path = tempfile.mkdtemp(prefix=f"state-scale-{engine}-")
    base = status_mb()
    if engine == "rocksdb":
        import rocksdict

        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_write_buffer_size(16 << 20)
        opts.set_max_write_buffer_number(2)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(rocksdict.Cache(32 << 20))
        table.set_bloom_filter(10, False)
        opts.set_block_based_table_factory(table)
        db = rocksdict.Rdict(path, opts)
        wo = rocksdict.WriteOptions()
        wo.disable_wal = True  # type: ignore[assignment,method-assign]
        db.set_write_options(wo)

        def bulk(pairs: list[tuple[bytes, bytes]]) -> None:
            batch = rocksdict.WriteBatch(raw_mode=True)
            for k, v in pairs:
                batch.put(k, v)
            db.write(batch)

        def put(k: bytes, v: bytes) -> None:
            db.put(k, v)

        def get(k: bytes) -> bytes | None:
            value: bytes | None = db.get(k)
            return value

        def scan() -> int:
            return sum(1 for _, v in db.items() if dec(v) is not None)

        def settle() -> None:  # memtables to files, so the size on disk is all of it
            db.flush()
            time.sleep(2)
    else:
        import lmdb

        env = lmdb.open(path, map_size=1 << 40, max_dbs=8, sync=False, metasync=False,
                        readahead=False)
        sub = env.open_db(b"g")

        def bulk(pairs: list[tuple[bytes, bytes]]) -> None:
            with env.begin(write=True, db=sub) as txn:
                txn.cursor().putmulti(pairs)

        def put(k: bytes, v: bytes) -> None:
            with env.begin(write=True, db=sub) as txn:
                txn.put(k, v)

        def get(k: bytes) -> bytes | None:
            with env.begin(db=sub) as txn:
                value: bytes | None = txn.get(k)
                return value

        def scan() -> int:
            with env.begin(db=sub) as txn:
                return sum(1 for _, v in txn.cursor() if dec(v) is not None)

        def settle() -> None:
            env.sync(True)

    order = list(range(n))
    random.Random(1).shuffle(order)
    t = time.perf_counter()
    for i in range(0, n, 10_000):
        bulk([(kc.key_bytes(key(j)), enc(Session(j, j, T0))) for j in order[i:i + 10_000]])
    bulk_us = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    scanned = scan()
    scan_us = (time.perf_counter() - t) / scanned * 1e6
    probes = [kc.key_bytes(key(j)) for j in order[:100_000]]
    t = time.perf_counter()
    for k in probes:
        raw = get(k)
        assert raw is not None
        dec(raw)
    get_us = (time.perf_counter() - t) / len(probes) * 1e6
    t = time.perf_counter()
    for k in probes:
        put(k, enc(Session(1, 1, T0 + timedelta(seconds=1))))
    put_us = (time.perf_counter() - t) / len(probes) * 1e6
    settle()
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    mem = status_mb()
    shutil.rmtree(path)
    return {"keys": n, "bulk_load_us_per_key": bulk_us, "scan_decode_us_per_key": scan_us,
            "random_get_decode_us": get_us, "single_put_us": put_us,
            "disk_mb": size / 2**20, "rss_growth_mb": mem["VmRSS"] - base["VmRSS"],
            "rss_file_mb": mem["RssFile"], "rss_anon_growth_mb": mem["RssAnon"] - base["RssAnon"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=None)
    p.add_argument("--compare", action="store_true", help="raw RocksDB vs LMDB")
    p.add_argument("--memory", action="store_true", help="in-memory backend, RSS per key")
    p.add_argument("--engine", choices=("rocksdb", "lmdb"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine:
        print(json.dumps(engine_run(args.engine, args.keys or 1_000_000)))
        return
    if args.memory:
        print(json.dumps(memory(args.keys or 1_000_000)))
        return
    if args.compare:
        compare(args.keys or 1_000_000)
        return
    n = args.keys or FULL
    result = scale(n)
    proc = subprocess.run([sys.executable, __file__, "--memory", "--keys", str(min(n, 1_000_000))],
                          capture_output=True, text=True, check=True)
    mem = json.loads(proc.stdout.strip().splitlines()[-1])
    result["memory_backend"] = mem
    print(f"in-memory backend: {mem['bytes_per_key']:.0f} bytes/key resident "
          f"(~{mem['bytes_per_key'] * n / 2**20:.0f} MB for {n:,} keys)", flush=True)
    cap = CAP_MB
    targets = [
        Target(f"state_scale_peak_rss_{n}_keys", result["peak_rss_mb"], cap, "MB", higher=False,
               note="disk backend, 128 key groups, default settings, snapshot included"),
    ]
    write_result("state_scale", n >= FULL, {"cap_mb": cap, **result}, targets)


if __name__ == "__main__":
    main()
