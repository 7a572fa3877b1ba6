"""Checkpoints hold Arrow data typed from the state's K and V, readable as a table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from flowlib import FlowlibError
from flowlib.checkpoint import read_state
from tests.examples.cli_helpers import ROOT, run_cli

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
