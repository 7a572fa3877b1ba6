"""What the benchmark scripts share: the machine description, targets, results files.

Every standalone benchmark writes ``bench/results/<name>.json`` (full-size runs) or
``bench/work/results/<name>.json`` (smaller ones) holding at least ``date``, ``machine`` and
``targets`` (each ``{"name", "measured", "target", "unit", "met"}``), and prints each target as
``TARGET <name>: measured <x> / target <y> <unit> -> met|MISSED``; ``bench/run.py`` collects them.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
WORK = Path(os.environ.get("FLOWLIB_BENCH_WORK") or BENCH / "work")
"""Inputs, scratch outputs and smaller runs' results; ``$FLOWLIB_BENCH_WORK`` moves it."""
RESULTS = BENCH / "results"
PACKAGES = ("flowlib", "bytewax", "orjson", "msgspec", "pyarrow", "xxhash")

# Before flowlib is imported in this process (see child_env).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def machine() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python and package versions of this machine."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Target:
    """A measured figure against its goal. ``higher`` says which direction meets it."""

    name: str
    measured: float | None
    target: float
    unit: str
    higher: bool = True
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.target if self.higher else self.measured <= self.target

    def line(self) -> str:
        got = "n/a" if self.measured is None else f"{self.measured:.3g}"
        sign = ">=" if self.higher else "<="
        verdict = {True: "met", False: "MISSED", None: "MISSED (not measured)"}[self.met]
        note = f"  ({self.note})" if self.note else ""
        return (f"TARGET {self.name}: measured {got} / target {sign} {self.target:g} "
                f"{self.unit} -> {verdict}{note}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def write_result(name: str, full: bool, doc: dict[str, Any], targets: Sequence[Target]) -> Path:
    """Print the targets and write the results document; returns its path."""
    for t in targets:
        print(t.line(), flush=True)
    dest = RESULTS if full else WORK / "results"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}.json"
    body = {"benchmark": name, "date": doc.pop("date", now()), "machine": machine(),
            "load_average": os.getloadavg(), "full_size": full,
            "targets": [t.as_dict() for t in targets], **doc}
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(f"results: {shown(path)}", flush=True)
    return path


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def generated(path: Path, write: Callable[[Path], object]) -> Path:
    """``path``, written by ``write(tmp)`` unless it exists; renamed only when complete."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.name} ...", flush=True)
        tmp = path.with_suffix(".tmp")
        write(tmp)
        tmp.replace(path)
    return path


def warm(path: Path) -> None:
    """Read ``path`` once so every run reads it from the page cache."""
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


def child_env() -> dict[str, str]:
    """The environment of measured children: this one, with the repository importable, BLAS
    single-threaded (pyarrow imports numpy when it is installed, as the ``bench`` extra's
    matplotlib does, and OpenBLAS's idle threads would otherwise take CPU from the run), and
    compiled bytecode cached under ``WORK/pycache``.

    The bytecode cache matters where ``PYTHONDONTWRITEBYTECODE`` is set (as on the machine the
    figures come from): an editable install then compiles flowlib from source in every run
    (~0.1 s), while packages installed from wheels, bytewax among them, had theirs compiled at
    install. With the cache every peer runs as after a regular install.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(WORK / "pycache"))
    return env


def child_json(cmd: Sequence[str], timeout: float = 3600) -> tuple[dict[str, Any], float]:
    """Run a child that prints one JSON object as its last stdout line: (that, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env(),
                          check=False, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: " + " | ".join(tail))
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


class GcWatch:
    """Counts the collector's work while active: collections per generation, seconds spent,
    and GC-tracked objects allocated (net of those freed before the next collection: what
    drives collections)."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = 0.0
        self.tracked = 0
        self._t0 = 0.0

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            # The young count is reset by every collection: add it up before that happens.
            self.tracked += gc.get_count()[0]
            self._t0 = time.perf_counter()
        else:
            self.collections[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._t0

    def __enter__(self) -> GcWatch:
        self._start_count = gc.get_count()[0]
        gc.callbacks.append(self._cb)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._cb)
        self.tracked += gc.get_count()[0] - self._start_count

    def as_dict(self) -> dict[str, Any]:
        return {"collections": self.collections, "gc_seconds": self.seconds,
                "tracked_allocations": self.tracked}


def python() -> str:
    return sys.executable
