"""Checkpoints written incrementally read back like full ones: DuckDB, the API and the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest

from flowlib import FlowlibError
from flowlib.checkpoint import describe, read_state
from tests.examples.cli_helpers import ROOT, flowlib_command, run_cli

SSH = ROOT / "examples" / "ssh_attacks.py"
INCREMENTAL = ("--incremental-checkpoints", "--incremental-min-keys", "0")  # every group


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The recovery directory and outputs of a finished ssh_attacks run, checkpointed
    incrementally."""
    tmp = tmp_path_factory.mktemp("incremental")
    run_cli("run", SSH, "--recovery", tmp / "rec", *INCREMENTAL, "--", "--out", tmp / "out")
    return tmp / "rec", tmp / "out"


def test_duckdb_reads_an_exported_checkpoint_with_the_flows_values(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    rec, out = run
    assert any((rec / "flowlib-state" / "TrackAttackers").rglob("*.base"))  # incremental
    parquet = tmp_path / "attackers.parquet"
    run_cli("checkpoint", "export", rec, "TrackAttackers", parquet)
    rows = duckdb.execute(
        f"SELECT key, value.attempts, len(value.users) FROM read_parquet('{parquet}')"
    ).fetchall()
    reports = [json.loads(x) for x in (out / "attackers.jsonl").read_text().splitlines()]
    assert len(reports) > 1
    assert sorted(rows) == sorted(
        (r["remote"], r["attempts"], r["distinct_users"]) for r in reports
    )
    run_cli("checkpoint", "export", rec, "count_per_template", tmp_path / "counts.parquet")
    total = duckdb.execute(
        f"SELECT sum(value) FROM read_parquet('{tmp_path / 'counts.parquet'}')"
    ).fetchall()
    assert total == [(2000,)]


def test_describe_and_ls_count_the_files(run: tuple[Path, Path]) -> None:
    rec, _ = run
    step = next(s for s in describe(rec).steps if s.id == "TrackAttackers")
    assert step.files >= step.key_groups > 0 and step.file_bytes > 0
    ls = subprocess.run([*flowlib_command(), "checkpoint", "ls", str(rec)], cwd=ROOT,
                        capture_output=True, text=True, check=True).stdout
    row = next(line.split() for line in ls.splitlines() if line.strip().startswith("Track"))
    assert row[-2:] == [str(step.files), str(step.file_bytes)]


def test_a_damaged_file_is_refused_naming_step_and_file(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    rec, _ = run
    copy = tmp_path / "rec"
    subprocess.run(["cp", "-r", str(rec), str(copy)], check=True)
    victim = sorted((copy / "flowlib-state" / "TrackAttackers").rglob("*.base"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    name = victim.relative_to(copy).as_posix()
    with pytest.raises(
        FlowlibError, match=rf"step 'TrackAttackers' is corrupt: file {name}: checksum mismatch"
    ):
        read_state(copy, "TrackAttackers")
    show = subprocess.run(
        [*flowlib_command(), "checkpoint", "show", str(copy), "TrackAttackers"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert show.returncode == 1 and name in show.stderr
    victim.unlink()
    with pytest.raises(FlowlibError, match=rf"file {name} is missing"):
        read_state(copy, "TrackAttackers")
