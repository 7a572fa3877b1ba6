"""Checkpoints hold Arrow data typed from the state's K and V, readable as a table."""

from __future__ import annotations

import csv
import json
import pickle
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowlib import FlowlibError
from flowlib.checkpoint import read_state
from tests.examples.cli_helpers import ROOT, flowlib_command, run_cli

SSH = ROOT / "examples" / "ssh_attacks.py"


def test_keyed_state_reads_back_as_a_typed_table(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    run_cli("run", SSH, "--recovery", rec, "--", "--out", tmp_path / "out")
    table = read_state(rec, "TrackAttackers")
    assert table.schema.field("key").type == pa.large_string()
    assert table.schema.field("value").type == pa.struct([
        pa.field("attempts", pa.int64()),
        pa.field("invalid_user_attempts", pa.int64()),
        pa.field("users", pa.list_(pa.large_string())),
        pa.field("first_seen", pa.timestamp("us", tz="UTC")),
        pa.field("last_seen", pa.timestamp("us", tz="UTC")),
    ])
    state = {r["key"]: r["value"] for r in table.to_pylist()}
    reports = [json.loads(x) for x in (tmp_path / "out" / "attackers.jsonl")
               .read_text().splitlines()]
    assert {k: v["attempts"] for k, v in state.items()} == {
        r["remote"]: r["attempts"] for r in reports}
    assert {k: len(v["users"]) for k, v in state.items()} == {
        r["remote"]: r["distinct_users"] for r in reports}
    counts = read_state(rec, "count_per_template")
    assert counts.schema.field("value").type == pa.int64()
    assert sum(r["value"] for r in counts.to_pylist()) == 2000


def test_unknown_step_is_named(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    run_cli("run", SSH, "--recovery", rec, "--", "--out", tmp_path / "out")
    with pytest.raises(FlowlibError, match=r"no stateful step 'nope'.*TrackAttackers"):
        read_state(rec, "nope")


def corrupt_one_snapshot(rec: Path, step_id: str, flip_at: int = -30) -> None:
    """Flip one bit of a key group's snapshot inside bytewax's partition (a pickled ``bytes``)."""
    part = next(rec.glob("part-*.sqlite3"))
    with sqlite3.connect(part) as db:
        key, blob = db.execute(
            "SELECT state_key, ser_change FROM snaps WHERE step_id = ? AND ser_change IS NOT NULL"
            " LIMIT 1", (step_id,)).fetchone()
        data = bytearray(pickle.loads(blob))
        data[flip_at] ^= 0x01
        db.execute("UPDATE snaps SET ser_change = ? WHERE step_id = ? AND state_key = ?",
                   (pickle.dumps(bytes(data)), step_id, key))


def test_a_corrupt_checkpoint_is_refused_on_resume(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    run_cli("run", SSH, "--recovery", rec, "--", "--out", tmp_path / "out")
    corrupt_one_snapshot(rec, "ssh_attacks.TrackAttackers")
    with pytest.raises(FlowlibError, match=r"'TrackAttackers' is corrupt: checksum mismatch"):
        read_state(rec, "TrackAttackers")
    proc = subprocess.run(
        [*flowlib_command(), "run", str(SSH), "--recovery", str(rec), "--",
         "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "flowlib: error: checkpoint of step 'TrackAttackers' is corrupt: checksum mismatch")


# --- flowlib checkpoint ls | show | export ------------------------------------------------------


@pytest.fixture(scope="module")
def ssh_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A recovery directory of a finished ssh_attacks run, and the reports the flow wrote."""
    tmp = tmp_path_factory.mktemp("ssh")
    run_cli("run", SSH, "--recovery", tmp / "rec", "--", "--out", tmp / "out")
    reports = [json.loads(x) for x in (tmp / "out" / "attackers.jsonl").read_text().splitlines()]
    return tmp / "rec", {r["remote"]: r for r in reports}


def checkpoint_cli(*args: str | Path, status: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*flowlib_command(), "checkpoint", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )
    assert proc.returncode == status, proc.stderr
    return proc


def test_ls_summarises_the_directory(ssh_run: tuple[Path, dict[str, Any]]) -> None:
    rec, reports = ssh_run
    out = checkpoint_cli("ls", rec).stdout
    assert "flow:            ssh_attacks" in out
    assert "flowlib version: 0.1.0" in out
    assert "committed epoch: 1" in out
    assert "#0: 1 worker(s), from epoch 1" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("TrackAttackers"))
    _, key_type, state_type, groups, snaps, size = line.split()
    assert (key_type, state_type) == ("str", "AttackerState")
    # every attacker sits in one of the 128 key groups; each group has one committed snapshot
    assert 0 < int(groups) <= min(128, len(reports))
    assert int(snaps) == int(groups)
    assert int(size) > 1000
    assert "count_per_template  str       int" in out


def test_show_prints_keys_and_state(ssh_run: tuple[Path, dict[str, Any]]) -> None:
    rec, reports = ssh_run
    out = checkpoint_cli("show", rec, "TrackAttackers", "--limit", "5").stdout.splitlines()
    header, rule, *rows, footer = out
    assert header.split() == ["key", "value.attempts", "value.invalid_user_attempts",
                              "value.users", "value.first_seen", "value.last_seen"]
    assert set(rule) <= {"-", " "}
    assert footer == f"(5 of {len(reports)} keys; --limit to see more)"
    keys = [r.split()[0] for r in rows]
    assert keys == sorted(reports)[:5]
    for r in rows:
        key, attempts, invalid = r.split()[:3]
        assert int(attempts) == reports[key]["attempts"]
        assert int(invalid) == reports[key]["invalid_user_attempts"]
    everything = checkpoint_cli("show", rec, "TrackAttackers", "--limit", "1000").stdout
    assert everything.splitlines()[-1] == f"({len(reports)} keys)"


def test_show_epochs(ssh_run: tuple[Path, dict[str, Any]]) -> None:
    rec, _ = ssh_run
    default = checkpoint_cli("show", rec, "count_per_template").stdout
    assert checkpoint_cli("show", rec, "count_per_template", "--epoch", "1").stdout == default
    assert read_state(rec, "count_per_template", epoch=9).equals(
        read_state(rec, "count_per_template"))  # nothing was written after the commit
    err = checkpoint_cli("show", rec, "count_per_template", "--epoch", "0", status=1).stderr
    assert "epoch 0 of" in err and "give --epoch 1 or later" in err
    err = checkpoint_cli("show", rec, "nope", status=1).stderr
    assert err.strip() == (f"flowlib: error: no stateful step 'nope' in {rec}; it has: "
                           "TrackAttackers, count_per_template")


def assert_matches_reports(rows: list[dict[str, Any]], reports: dict[str, Any]) -> None:
    assert len(rows) == len(reports)
    for r in rows:
        rep = reports[r["key"]]
        assert r["attempts"] == rep["attempts"]
        assert r["invalid_user_attempts"] == rep["invalid_user_attempts"]
        assert len(r["users"]) == rep["distinct_users"]
        for f in ("first_seen", "last_seen"):
            assert r[f] == datetime.fromisoformat(rep[f]), f


def test_export_parquet_and_arrow(
    ssh_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    rec, reports = ssh_run
    checkpoint_cli("export", rec, "TrackAttackers", tmp_path / "state.parquet")
    table = pq.read_table(tmp_path / "state.parquet")
    assert table.schema.field("value").type.field("users").type == pa.list_(pa.large_string())
    assert_matches_reports([{"key": r["key"], **r["value"]} for r in table.to_pylist()], reports)
    checkpoint_cli("export", rec, "TrackAttackers", tmp_path / "state.arrow")
    with pa.memory_map(str(tmp_path / "state.arrow")) as f:
        assert pa.ipc.open_file(f).read_all().equals(table)


def test_export_csv_flattens_structs_and_writes_lists_as_json(
    ssh_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    rec, reports = ssh_run
    checkpoint_cli("export", rec, "TrackAttackers", tmp_path / "state.csv")
    with (tmp_path / "state.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["key", "value.attempts", "value.invalid_user_attempts",
                             "value.users", "value.first_seen", "value.last_seen"]
    assert_matches_reports([
        {"key": r["key"], "attempts": int(r["value.attempts"]),
         "invalid_user_attempts": int(r["value.invalid_user_attempts"]),
         "users": json.loads(r["value.users"]),
         "first_seen": datetime.fromisoformat(r["value.first_seen"]),
         "last_seen": datetime.fromisoformat(r["value.last_seen"])}
        for r in rows
    ], reports)


def test_export_refuses_an_unknown_format(
    ssh_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    rec, _ = ssh_run
    err = checkpoint_cli("export", rec, "TrackAttackers", tmp_path / "x.xlsx", status=1).stderr
    assert "give a .parquet, .arrow or .csv file name" in err
    assert not (tmp_path / "x.xlsx").exists()
