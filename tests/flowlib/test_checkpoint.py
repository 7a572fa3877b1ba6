"""Checkpoints hold Arrow data typed from the state's K and V, readable as a table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from flowlib import FlowlibError
from flowlib.checkpoint import read_state
from tests.examples.cli_helpers import ROOT, run_cli


def test_log_agg_state_reads_back_as_a_typed_table(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    run_cli("run", ROOT / "examples" / "log_agg.py", "--recovery", rec, "--",
            "--out", tmp_path / "out")
    table = read_state(rec, "count_per_template")
    assert table.schema.field("key").type == pa.struct(
        [pa.field("f0", pa.large_string()), pa.field("f1", pa.large_string())]
    )
    assert table.schema.field("value").type == pa.int64()
    state = {(r["key"]["f0"], r["key"]["f1"]): r["value"] for r in table.to_pylist()}
    rows = [json.loads(x) for x in (tmp_path / "out" / "counts_by_template.jsonl")
            .read_text().splitlines()]
    assert state == {(r["level"], r["template_id"]): r["count"] for r in rows}
    minutes = read_state(rec, "count_per_minute")
    assert minutes.schema.field("key").type == pa.timestamp("us", tz="UTC")
    assert sum(r["value"] for r in minutes.to_pylist()) == 2000


def test_unknown_step_is_named(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    run_cli("run", ROOT / "examples" / "log_agg.py", "--recovery", rec, "--",
            "--out", tmp_path / "out")
    with pytest.raises(FlowlibError, match=r"no stateful step 'nope'.*count_per_template"):
        read_state(rec, "nope")
