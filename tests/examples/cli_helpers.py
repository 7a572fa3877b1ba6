"""Helpers to run the example scripts through the real ``flowlib`` command."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOGHUB = ROOT / "examples" / "data" / "loghub"


def flowlib_command() -> list[str]:
    exe = Path(sys.executable).with_name("flowlib")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "flowlib.cli"]


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run ``flowlib ARGS``; fail the test with its stderr when it exits non-zero."""
    proc = subprocess.run(
        [*flowlib_command(), *map(str, args)],
        capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"flowlib {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stderr


def step_counts(stderr: str, step: str) -> tuple[int, int, int, int]:
    """``(in, out, dead letters, late)`` of ``step`` in the report table ``flowlib run`` prints
    (its columns: step, kind, in, out, dead letters, late, in/s)."""
    line = next(x for x in stderr.splitlines() if x.split()[:1] == [step])
    n_in, n_out, dead, late = (int(v) for v in line.split()[-5:-1])
    return n_in, n_out, dead, late


def structured_rows(system: str) -> list[dict[str, str]]:
    """LogHub's own labelling of every line of the ``system`` sample (the independent answer)."""
    path = LOGHUB / system / f"{system}_2k.log_structured.csv"
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
