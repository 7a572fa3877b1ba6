"""Crash suite: kill -9 log_agg at random points with recovery on, resume, compare.

Every resumed run must give exactly the output of an uninterrupted run: the same window counts,
late events and dead letters, none lost and none twice. The fast variant (3 kill points) runs in
CI; ``FLOWLIB_LONG_TESTS=1`` runs the long one (12 kill points). The same holds with the window
state on disk (``--state disk``, ``DiskBackend``): 2 kill points in CI, 12 on demand, plus 10
on demand with disk state and incremental checkpoints together.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.examples.cli_helpers import ROOT, flowlib_command, run_cli
from tests.examples.test_log_agg import SCRIPT, with_garbage

OUTPUTS = ("counts_by_template.jsonl", "counts_by_minute.jsonl", "late.jsonl",
           "dead_letters.jsonl")
LONG = os.environ.get("FLOWLIB_LONG_TESTS") == "1"


def outputs(out: Path) -> dict[str, list[str]]:
    return {name: sorted((out / name).read_text().splitlines()) for name in OUTPUTS}


def comparable(lines: list[str]) -> list[str]:
    # A dead letter records when it failed: that processing time differs between runs.
    return sorted(line.split(',"time":')[0] for line in lines)


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]], float]:
    tmp = tmp_path_factory.mktemp("crash")
    log, _ = with_garbage(tmp, copies=100)
    started = time.monotonic()
    run_cli("run", SCRIPT, "--", log, "--out", tmp / "clean")
    return log, outputs(tmp / "clean"), time.monotonic() - started


def kill_and_resume(
    log: Path, out: Path, recovery: Path, delay: float, extra: tuple[str, ...] = (),
    script_args: tuple[str, ...] = (),
) -> None:
    cmd = [*flowlib_command(), "run", str(SCRIPT), "--recovery", str(recovery),
           "--snapshot-interval", "0.2", *extra, "--", str(log), "--out", str(out), *script_args]
    with open(out.parent / f"{out.name}.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=err, start_new_session=True)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run_cli("run", SCRIPT, "--recovery", recovery, "--snapshot-interval", "0.2", *extra, "--",
            log, "--out", out, *script_args)


@pytest.mark.slow
@pytest.mark.parametrize("point", range(12 if LONG else 3))
def test_resume_after_a_random_kill_equals_an_uninterrupted_run(
    workload: tuple[Path, dict[str, list[str]], float], tmp_path: Path, point: int
) -> None:
    log, clean, duration = workload
    # Seeded: the same kill points every run, spread over the whole run (start-up included).
    delay = random.Random(point).uniform(0.15, 1.0) * duration
    kill_and_resume(log, tmp_path / "out", tmp_path / "recovery", delay)
    got = outputs(tmp_path / "out")
    for name in OUTPUTS:
        assert comparable(got[name]) == comparable(clean[name]), (name, delay)


INCREMENTAL = ("--incremental-checkpoints", "--incremental-min-keys", "0")  # every key group


@pytest.mark.slow
@pytest.mark.parametrize("point", range(12 if LONG else 2))
def test_incremental_checkpoints_resume_after_a_random_kill_equals_an_uninterrupted_run(
    workload: tuple[Path, dict[str, list[str]], float], tmp_path: Path, point: int
) -> None:
    log, clean, duration = workload
    delay = random.Random(100 + point).uniform(0.15, 1.0) * duration
    kill_and_resume(log, tmp_path / "out", tmp_path / "recovery", delay, INCREMENTAL)
    assert any((tmp_path / "recovery" / "flowlib-state").rglob("shared/*.deltas"))
    got = outputs(tmp_path / "out")
    for name in OUTPUTS:
        assert comparable(got[name]) == comparable(clean[name]), (name, delay)


DISK = ("--state", "disk")


@pytest.mark.slow
@pytest.mark.parametrize("point", range(12 if LONG else 2))
def test_disk_state_resume_after_a_random_kill_equals_an_uninterrupted_run(
    workload: tuple[Path, dict[str, list[str]], float], tmp_path: Path, point: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log, clean, duration = workload
    state = tmp_path / "state"
    monkeypatch.setenv("FLOWLIB_STATE_DIR", str(state))
    delay = random.Random(200 + point).uniform(0.15, 1.0) * duration
    # The killed run's database holds writes made after its last checkpoint: the resumed run
    # must not see them (it restores from the checkpoint), and removes the dead run's directory.
    kill_and_resume(log, tmp_path / "out", tmp_path / "recovery", delay, script_args=DISK)
    got = outputs(tmp_path / "out")
    for name in OUTPUTS:
        assert comparable(got[name]) == comparable(clean[name]), (name, delay)
    assert list(state.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="FLOWLIB_LONG_TESTS=1")
@pytest.mark.parametrize("point", range(10))
def test_disk_state_with_incremental_checkpoints_resume_after_a_random_kill(
    workload: tuple[Path, dict[str, list[str]], float], tmp_path: Path, point: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log, clean, duration = workload
    monkeypatch.setenv("FLOWLIB_STATE_DIR", str(tmp_path / "state"))
    delay = random.Random(300 + point).uniform(0.15, 1.0) * duration
    kill_and_resume(log, tmp_path / "out", tmp_path / "recovery", delay, INCREMENTAL,
                    script_args=DISK)
    got = outputs(tmp_path / "out")
    for name in OUTPUTS:
        assert comparable(got[name]) == comparable(clean[name]), (name, delay)
