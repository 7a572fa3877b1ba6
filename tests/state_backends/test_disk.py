"""What only the disk backend has: its directory, its settings, its memory bound."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowlib.codecs import EncodeError, codec_for
from state_backends import DiskBackend, DiskOptions
from state_backends._disk import open_store


def test_each_process_gets_its_own_directory_removed_on_close(tmp_path: Path) -> None:
    s = DiskBackend.at(tmp_path)(codec_for(str), codec_for(int))
    s.put("a", 1)
    assert len(s) == 1
    directory = s.directory
    assert directory.parent == tmp_path.resolve()
    assert directory.name.startswith(f"{os.getpid()}-") and any(directory.iterdir())
    open_store(DiskOptions(tmp_path).store_config()).close()
    assert not directory.exists()


def test_directories_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f"{dead.stdout.strip()}-abc"
    (stale / "db").mkdir(parents=True)
    alive = tmp_path / f"{os.getppid()}-def"  # our parent still runs
    alive.mkdir()
    other = tmp_path / "not-a-state-dir"
    other.mkdir()
    DiskBackend.at(tmp_path)(codec_for(str), codec_for(int))
    assert not stale.exists() and alive.exists() and other.exists()


def test_a_collected_backend_deletes_its_keys(tmp_path: Path) -> None:
    factory = DiskBackend.at(tmp_path)
    s = factory(codec_for(int), codec_for(int))
    for i in range(100):
        s.put(i, i)
    assert len(s) == 100
    store, prefix = s._store, s._prefix
    del s
    gc.collect()
    assert list(store.scan(prefix)) == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"DiskOptions.cache_entries must be an int >= 16, got 3"):
        DiskBackend.at(cache_entries=3)
    with pytest.raises(ValueError, match="block_cache_mb"):
        DiskOptions(block_cache_mb=0)


def test_a_value_that_does_not_fit_the_type_is_refused_naming_the_key(tmp_path: Path) -> None:
    s = DiskBackend.at(tmp_path)(codec_for(str), codec_for(int))
    s.put("bad", object())  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match=r"state of key 'bad': cannot store object value"):
        len(s)


def test_approximate_len_counts_flushed_keys_without_flushing(tmp_path: Path) -> None:
    s = DiskBackend.at(tmp_path, cache_entries=16)(codec_for(int), codec_for(int))
    for k in range(10):
        s.put(k, k)
    assert s.approximate_len() == 0  # all still in the cache: metrics must not force a flush
    assert len(s) == 10  # len flushes
    s.put(10, 10)
    s.delete(0)
    assert s.approximate_len() == 10  # as of the last flush
    for k in range(11, 100):  # beyond the cache: flushed as it fills
        s.put(k, k)
    assert 99 - 16 <= s.approximate_len() <= 99
    assert len(s) == 99


def test_state_directory_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLIB_STATE_DIR", str(tmp_path / "env"))
    s = DiskBackend(codec_for(str), codec_for(int))
    assert s.directory.parent == (tmp_path / "env").resolve()


# A child process, so its resident memory is its own: 200,000 keys of ~500 bytes each (about
# 110 MB as Python objects, as the memory backend holds them) with a small cache.
_CHILD = textwrap.dedent("""
    import json, sys
    from flowlib.codecs import codec_for
    from state_backends import DiskBackend, MemoryBackend

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    kind, n = sys.argv[1], int(sys.argv[2])
    factory = (DiskBackend.at(sys.argv[3], cache_entries=1000, block_cache_mb=4,
                              write_buffer_mb=4) if kind == "disk" else MemoryBackend)
    s = factory(codec_for(str), codec_for(str))
    pad = "x" * 450
    s.put("warm-up", pad)
    len(s)
    base = rss_mb()
    for i in range(n):
        s.put(f"key-{i:08d}", f"{i:08d}{pad}")
    assert len(s) == n + 1 and s.get("key-00000007") == f"{7:08d}{pad}"
    print(json.dumps({"growth_mb": rss_mb() - base}))
""")


def _growth(kind: str, n: int, tmp_path: Path) -> float:
    proc = subprocess.run([sys.executable, "-c", _CHILD, kind, str(n), str(tmp_path)],
                          capture_output=True, text=True, check=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    growth: float = json.loads(proc.stdout.strip().splitlines()[-1])["growth_mb"]
    return growth


def test_resident_memory_stays_bounded_as_state_grows(tmp_path: Path) -> None:
    n = 200_000
    memory = _growth("memory", n, tmp_path)
    disk = _growth("disk", n, tmp_path)
    # The cap: RocksDB's buffers (4 + 2 x 4 MB), bloom filters and 1000 cached values, with
    # room for the allocator; the memory backend needs about 110 MB for the same state.
    assert disk < 32, (disk, memory)
    assert memory > 3 * disk, (disk, memory)
