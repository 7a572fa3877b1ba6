"""Resuming a checkpoint with a different number of workers gives the uninterrupted result.

bytewax fixes the number of recovery partitions when the directory is created (flowlib makes one
per worker of the first run) and routes state to partitions independently of the worker count,
so a later run may use more or fewer workers than the one that wrote the checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.examples.cli_helpers import ROOT, flowlib_command, run_cli, step_counts
from tests.examples.test_log_agg import SCRIPT, with_garbage

COPIES = 80  # 160k lines: a couple of seconds per run
OUTPUTS = ("counts_by_template.jsonl", "counts_by_minute.jsonl", "dead_letters.jsonl")
INCREMENTAL = ["--incremental-checkpoints", "--incremental-min-keys", "0"]  # every group


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The input log and the output directory of an uninterrupted run over it."""
    tmp = tmp_path_factory.mktemp("rescale")
    log, _ = with_garbage(tmp, copies=COPIES)
    run_cli("run", SCRIPT, "-q", "--", log, "--out", tmp / "clean")
    return log, tmp / "clean"


def sorted_lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines())


def records(path: Path) -> list[str]:
    return sorted(str(json.loads(line)["record"]) for line in path.read_text().splitlines())


@pytest.mark.parametrize(
    ("first", "then", "workers_then"),
    [(["-p", "1"], ["-p", "2"], 2), (["-w", "2"], ["-p", "1"], 1),
     ([*INCREMENTAL, "-w", "2"], [*INCREMENTAL, "-p", "2"], 2)],
    ids=["1-to-2-processes", "2-workers-to-1", "incremental-2-workers-to-2-processes"],
)
def test_kill_9_and_resume_with_other_parallelism(
    clean_run: tuple[Path, Path], tmp_path: Path, first: list[str], then: list[str],
    workers_then: int,
) -> None:
    log, clean = clean_run
    rec, out = tmp_path / "rec", tmp_path / "out"
    args = [*flowlib_command(), "run", str(SCRIPT), *first, "-q", "-v", "--recovery", str(rec),
            "--snapshot-interval", "0.2", "--", str(log), "--out", str(out)]
    crashed_log = tmp_path / "crashed.stderr"
    with crashed_log.open("wb") as err:
        proc = subprocess.Popen(args, cwd=ROOT, stderr=err, start_new_session=True)
        # Kill once a third of the dead letters are out (well under way, far from finished)
        # and a process has logged its second checkpoint (the first is committed by then).
        dead, enough = out / "dead_letters.jsonl", (clean / "dead_letters.jsonl").stat().st_size
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (dead.exists() and dead.stat().st_size > enough // 3
                    and ": checkpoint 2: " in crashed_log.read_text()):
                break
            assert proc.poll() is None, "the run ended before it could be killed: make it longer"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (out / "counts_by_minute.jsonl").stat().st_size > 0  # part of the output was written
    stderr = run_cli("run", SCRIPT, *then, "--recovery", rec, "--snapshot-interval", "0.2", "--",
                     log, "--out", out)
    total = len(log.read_text().splitlines())
    assert 0 < step_counts(stderr, "parse")[0] < total, "the second run resumed from a checkpoint"
    for name in OUTPUTS[:2]:
        assert sorted_lines(out / name) == sorted_lines(clean / name), name
    assert records(out / OUTPUTS[2]) == records(clean / OUTPUTS[2])  # no dead letter lost or twice
    ls = subprocess.run([*flowlib_command(), "checkpoint", "ls", str(rec)], cwd=ROOT,
                        capture_output=True, text=True, check=True).stdout
    executions = [x.strip() for x in ls.splitlines() if x.strip().startswith("#")]
    assert executions[-1].startswith(f"#{len(executions) - 1}: {workers_then} worker(s)")
