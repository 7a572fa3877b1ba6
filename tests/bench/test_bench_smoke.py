"""The benchmark scripts at a tiny size: they run, check their outputs, and report targets.

Not a measurement (a few thousand events say nothing about speed): it keeps the scripts working.
The full suite is ``python bench/run.py``. The scripts that start a process per run (several
seconds even at this size) run with ``FLOWLIB_LONG_TESTS=1``; ``scaling.py`` (``-p 2`` start-up)
only in the suite.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LONG = pytest.mark.skipif(os.environ.get("FLOWLIB_LONG_TESTS") != "1",
                          reason="FLOWLIB_LONG_TESTS=1")
TARGET = re.compile(r"^TARGET .+: measured \S+ / target [<>]= \S+ .* -> (met|MISSED)", re.M)


def bench(tmp_path: Path, script: str, *args: str) -> tuple[str, dict[str, Any]]:
    """Run ``bench/SCRIPT ARGS`` with its work directory in ``tmp_path``: (stdout, result)."""
    env = {**os.environ, "FLOWLIB_BENCH_WORK": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = list((tmp_path / "results").glob("*.json"))
    assert len(found) == 1, found
    return proc.stdout, json.loads(found[0].read_text())


def check_targets(out: str, doc: dict[str, Any], names: list[str]) -> None:
    assert doc["machine"]["cores"] >= 1 and doc["date"]
    assert not doc["full_size"]  # a small run never lands in bench/results
    got = [t["name"] for t in doc["targets"]]
    assert got == names
    assert len(TARGET.findall(out)) == len(names)
    for t in doc["targets"]:
        assert isinstance(t["measured"], float) and t["met"] in (True, False), t


SHARED = Path(os.environ.get("FLOWLIB_SHARED_BENCH", ROOT.parent / "shared" / "bench"))
NEEDS_SHARED = pytest.mark.skipif(
    not (SHARED / "gen_events.py").exists(),
    reason=f"the shared benchmark workload is not at {SHARED} (set FLOWLIB_SHARED_BENCH)",
)


@NEEDS_SHARED
def test_decode_bench(tmp_path: Path) -> None:
    out, doc = bench(tmp_path, "decode_bench.py", "--events", "2000", "--repeats", "1")
    check_targets(out, doc, [f"decode {k} {what}" for k in ("metric", "log") for what in (
        "flowlib/msgspec per line", "flowlib/msgspec bulk", "flowlib bulk (the source's path)")])
    assert set(doc["us_per_event"]["log"]) >= {"flowlib", "flowlib bulk", "msgspec", "orjson"}


@LONG
@NEEDS_SHARED
def test_typed_vs_untyped_checks_every_run(tmp_path: Path) -> None:
    out, doc = bench(tmp_path, "typed_vs_untyped.py", "--dataset", "metrics", "--events",
                     "3000", "--rounds", "1")
    runs = doc["datasets"]["metrics"]["runs"]
    assert [r["variant"] for r in runs] == ["dataclass", "struct", "dict"]
    assert all(r["correct"] and r["events"] == 3000 for r in runs)
    # Three representations of the same event hold different numbers of memory blocks.
    assert runs[2]["blocks_per_event"] > runs[0]["blocks_per_event"] >= 1
    whats = ("throughput", "fewer GC collections decoding (default GC)",
             "fewer memory blocks per decoded event")
    check_targets(out, doc, [f"metrics {v}/dict {what}" for v in ("dataclass", "struct")
                             for what in whats])


@LONG
def test_key_scaling(tmp_path: Path) -> None:
    out, doc = bench(tmp_path, "key_scaling.py", "--keys", "10,300", "--disk-at", "",
                     "--events", "1000")
    assert [(p["keys"], p["events"], p["correct"]) for p in doc["points"]] == [
        (10, 1000, True), (300, 1000, True)]
    check_targets(out, doc, ["keys 10->300 memory backend: max/min cost per event"])


def test_run_summarises_targets_in_a_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(ROOT / "bench"))  # run.py imports its neighbour _benchlib
    try:
        spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
        assert spec is not None and spec.loader is not None
        run: Any = importlib.util.module_from_spec(spec)
        sys.modules["bench_run"] = run  # its dataclasses look their module up
        spec.loader.exec_module(run)
    finally:
        sys.path.remove(str(ROOT / "bench"))
        sys.modules.pop("bench_run", None)
    result = tmp_path / "x.json"
    result.write_text(json.dumps({"benchmark": "x", "date": "d", "targets": [
        {"name": "fast", "measured": 2.0, "target": 1.5, "unit": "x", "higher": True,
         "met": True, "note": ""},
        {"name": "small", "measured": 3.0, "target": 2.0, "unit": "µs", "higher": False,
         "met": False, "note": "why"},
    ]}))
    targets = run.collect([result])
    assert [run.target_line(t) for t in targets] == [
        "fast: measured 2 / target >= 1.5 x -> met",
        "small: measured 3 / target <= 2 µs -> MISSED  (why)",
    ]
    png = tmp_path / "summary.png"
    assert run.chart(targets, png, "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
