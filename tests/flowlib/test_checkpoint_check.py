"""Schema evolution end to end: a real run stopped mid-input with state v1, then
``flowlib checkpoint check`` / ``migrate`` and a resume with a changed flow.

The flow (``evolution_flow.py``) reads 6 copies of LogHub's OpenSSH sample and keeps, per first
word of the message, counts and a time span. The crashed run ends with ``os._exit`` (as ``kill
-9``) at line 7,000 of 12,000, after several checkpoints committed.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest

from flowlib._graph import ProcessNode, walk
from flowlib._script import load_flow
from flowlib.checkpoint import describe, read_state
from flowlib.cli import main as flowlib_main
from flowlib.engine._evolution import conversion
from flowlib.engine._recovery import prepare_recovery_dir
from flowlib.engine._snapshots import encode_snapshot, read_state_table
from tests.examples.cli_helpers import ROOT, flowlib_command, run_cli

SCRIPT = Path(__file__).with_name("evolution_flow.py")
SAMPLE = ROOT / "examples" / "data" / "loghub" / "OpenSSH" / "OpenSSH_2k.log"


INCREMENTAL = ["--incremental-checkpoints", "--incremental-min-keys", "1"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The input (the sample 6 times, 12,000 lines) and an uninterrupted v1 run's report."""
    tmp = tmp_path_factory.mktemp("evolution_input")
    log = tmp / "ssh.log"
    lines = SAMPLE.read_text().splitlines()
    log.write_text("\n".join(lines * 6) + "\n")
    run_cli("run", SCRIPT, "-q", "--", log, "--out", tmp / "clean")
    return log, reports(tmp / "clean")


def crash(tmp: Path, uninterrupted: tuple[Path, dict[str, Any]], options: list[str],
          ) -> dict[str, Any]:
    """A recovery dir of a v1 run stopped mid-input (line 7,000), after checkpoints."""
    log, clean = uninterrupted
    rec = tmp / "rec"
    proc = subprocess.run(
        [*flowlib_command(), "run", str(SCRIPT), "-q", "--recovery", str(rec), *options,
         "--snapshot-interval", "0.05", "--", str(log), "--out", str(tmp / "crashed"),
         "--crash-after", "7000", "--pause-every", "300"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 137, proc.stderr
    saved = {r["key"]: r["value"] for r in read_state(rec, "track").to_pylist()}
    assert saved, "no checkpoint committed before the crash"
    if options:  # the state is in base/delta files that the records name
        assert any((rec / "flowlib-state").rglob("*.base"))
    assert sum(s["lines"] for s in saved.values()) < sum(r["lines"] for r in clean.values())
    return {"log": log, "rec": rec, "clean": clean, "saved": saved, "options": options}


@pytest.fixture(scope="module")
def crashed(
    tmp_path_factory: pytest.TempPathFactory, uninterrupted: tuple[Path, dict[str, Any]]
) -> dict[str, Any]:
    return crash(tmp_path_factory.mktemp("evolution"), uninterrupted, [])


@pytest.fixture(scope="module")
def crashed_incremental(
    tmp_path_factory: pytest.TempPathFactory, uninterrupted: tuple[Path, dict[str, Any]]
) -> dict[str, Any]:
    """As ``crashed``, with incremental checkpoints (records naming base and delta files)."""
    return crash(tmp_path_factory.mktemp("evolution_incremental"), uninterrupted, INCREMENTAL)


@pytest.fixture(params=["crashed", "crashed_incremental"])
def any_crashed(request: pytest.FixtureRequest) -> dict[str, Any]:
    found: dict[str, Any] = request.getfixturevalue(request.param)
    return found


@pytest.fixture
def rec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the crashed run's recovery directory (``any_crashed`` if the test
    uses it, else ``crashed``)."""
    name = "any_crashed" if "any_crashed" in request.fixturenames else "crashed"
    source: dict[str, Any] = request.getfixturevalue(name)
    copy = tmp_path / "rec"
    shutil.copytree(source["rec"], copy)
    yield copy


def reports(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]
    return {r["key"]: r for r in rows}


def checkpoint_cli(*args: str | Path) -> tuple[int, str, str]:
    """``flowlib checkpoint ARGS`` through the console script's entry point, in process."""
    out, err = io.StringIO(), io.StringIO()
    from flowlib import _checkpoint_cli

    with redirect_stderr(err):
        code = _checkpoint_cli.main([str(a) for a in args], out=out)
    return code, out.getvalue(), err.getvalue()


def flow_args(crashed: dict[str, Any], out: Path, *extra: str) -> list[str]:
    return [str(SCRIPT), "--", str(crashed["log"]), "--out", str(out), *extra]


def resume(
    crashed: dict[str, Any], rec: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*flowlib_command(), "run", "-q", "--recovery", str(rec), *crashed.get("options", []),
         *flow_args(crashed, out, *extra)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_check_lists_what_a_compatible_resume_converts(crashed: dict[str, Any], rec: Path,
                                                       tmp_path: Path) -> None:
    code, out, _ = checkpoint_cli("check", rec, *flow_args(crashed, tmp_path, "--state", "v2"))
    assert code == 0
    assert "track  compatible" in out
    for change in ("state State2.total_len: widened int -> float",
                   "state State2.last_pid: dropped (was int)",
                   "state State2.origin: added = 'checkpoint'",
                   "state State2.span.tz: added = 'UTC'"):
        assert change in out
    assert out.rstrip().endswith("\nresumable")
    code, out, _ = checkpoint_cli("check", rec, *flow_args(crashed, tmp_path))
    assert (code, "track  unchanged" in out) == (0, True)


def test_resume_with_v2_converts_the_checkpoint_and_completes(
    any_crashed: dict[str, Any], rec: Path, tmp_path: Path
) -> None:
    crashed = any_crashed
    proc = resume(crashed, rec, tmp_path / "out", "--state", "v2")
    assert proc.returncode == 0, proc.stderr
    got, clean, saved = reports(tmp_path / "out"), crashed["clean"], crashed["saved"]
    assert got.keys() == clean.keys()
    for key, r in got.items():
        c = clean[key]
        assert (r["lines"], r["first"], r["last"]) == (c["lines"], c["first"], c["last"])
        assert r["total_len"] == float(c["total_len"]) and isinstance(r["total_len"], float)
        assert r["tz"] == "UTC"  # the nested added field's default
        # The added field's default shows on state restored from the checkpoint; state the
        # v2 flow created itself says so.
        assert r["origin"] == ("checkpoint" if key in saved else "v2")
    # The manifest now knows both schemas: a later check still converts the v1 snapshots.
    manifest = json.loads((rec / "flowlib-manifest.json").read_text())
    assert [s["state_type"] for s in manifest["stateful_steps"][0]["schemas"]] == [
        "State1", "State2"]


@pytest.mark.parametrize(
    ("state", "path", "old", "new"),
    [("bad_type", "StateBadType.lines", "int", "str"),
     ("bad_required", "StateBadRequired.origin", "absent", "str")],
)
def test_an_incompatible_change_is_refused_before_any_event_runs(
    crashed: dict[str, Any], rec: Path, tmp_path: Path, state: str, path: str, old: str,
    new: str,
) -> None:
    code, out, _ = checkpoint_cli("check", rec, *flow_args(crashed, tmp_path, "--state", state))
    assert code == 1
    assert "track  incompatible" in out and out.rstrip().endswith("NOT resumable")
    assert "step 'track'" in out and f"field {path} was {old}, the flow now declares {new}" in out
    runs_before = len(describe(rec).executions)
    # --crash-after 1: had any event run, the process would have ended with status 137.
    proc = resume(crashed, rec, tmp_path / "out", "--state", state, "--crash-after", "1")
    assert proc.returncode == 1
    assert "step 'track'" in proc.stderr and path in proc.stderr
    assert len(describe(rec).executions) == runs_before  # bytewax never started


def test_a_renamed_step_is_refused_then_resumes_once_mapped(
    any_crashed: dict[str, Any], rec: Path, tmp_path: Path
) -> None:
    crashed = any_crashed
    if not crashed["options"]:  # the same refusal either way: run it once
        proc = resume(crashed, rec, tmp_path / "out", "--step", "tracker", "--crash-after", "1")
        assert proc.returncode == 1
        assert ("stateful step 'track' is no longer in the flow (renamed to 'tracker'?)"
                in proc.stderr)
        assert "--rename track=tracker" in proc.stderr
    code, out, _ = checkpoint_cli("check", rec, *flow_args(crashed, tmp_path, "--step", "tracker"))
    assert code == 1
    assert re.search(r"^  track +removed$", out, re.M)
    assert re.search(r"^  tracker +added$", out, re.M)
    code, out, _ = checkpoint_cli("migrate", rec, "--rename", "track=tracker")
    assert (code, out) == (0, "renamed 'track' to 'tracker'\n")
    assert read_state(rec, "tracker").num_rows == len(crashed["saved"])
    proc = resume(crashed, rec, tmp_path / "out", "--step", "tracker")
    assert proc.returncode == 0, proc.stderr
    assert reports(tmp_path / "out") == crashed["clean"]


def test_a_dropped_step_and_a_new_one_start_empty_once_declared(
    crashed: dict[str, Any], rec: Path, tmp_path: Path
) -> None:
    code, _, err = checkpoint_cli("migrate", rec, "--drop", "nope", "--add", "track")
    assert code == 1 and "no stateful step 'nope'" in err and "'track' already has state" in err
    code, out, _ = checkpoint_cli("migrate", rec, "--drop", "track", "--add", "fresh")
    assert code == 0, out
    proc = resume(crashed, rec, tmp_path / "out", "--step", "fresh")
    assert proc.returncode == 0, proc.stderr
    got, clean, saved = reports(tmp_path / "out"), crashed["clean"], crashed["saved"]
    # The new step saw only the input after the checkpoint: exactly what the dropped one lacked.
    for key, r in got.items():
        assert r["lines"] == clean[key]["lines"] - saved.get(key, {"lines": 0})["lines"]


def test_check_reads_old_schemas_from_the_snapshots_of_a_legacy_manifest(
    crashed: dict[str, Any], rec: Path, tmp_path: Path
) -> None:
    manifest_path = rec / "flowlib-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["stateful_steps"][0]["schemas"]  # as written before schemas were recorded
    manifest_path.write_text(json.dumps(manifest))
    code, out, _ = checkpoint_cli("check", rec, *flow_args(crashed, tmp_path, "--state", "v2"))
    assert code == 0 and "state State2.total_len: widened int -> float" in out
    code, out, _ = checkpoint_cli("check", rec, *flow_args(crashed, tmp_path,
                                                           "--state", "bad_type"))
    assert code == 1 and "field StateBadType.lines was int" in out


def test_the_cli_entry_point_dispatches_check(crashed: dict[str, Any], rec: Path,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              ) -> None:
    code = flowlib_main(["checkpoint", "check", str(rec), *flow_args(crashed, tmp_path)])
    assert code == 0 and "resumable" in capsys.readouterr().out


def test_read_state_of_a_directory_mid_evolution_shows_the_newest_schema(
    crashed: dict[str, Any], rec: Path, tmp_path: Path
) -> None:
    # As after a resume with v2 that stopped early: the manifest records both schemas and
    # one key group was snapshotted again with v2 while the others still hold v1.
    v2 = load_flow(str(SCRIPT), [str(crashed["log"]), "--out", str(tmp_path), "--state", "v2"])
    assert prepare_recovery_dir(v2, rec, 1) is False  # checks and records, runs nothing
    state_type = next(n.state_type for n in walk(v2.sinks) if isinstance(n, ProcessNode))
    part = next(rec.glob("part-*.sqlite3"))
    with sqlite3.connect(part) as db:
        group, blob = db.execute(
            "SELECT state_key, ser_change FROM snaps WHERE step_id = 'evolution.track'"
            " AND ser_change IS NOT NULL LIMIT 1").fetchone()
        old = read_state_table(pickle.loads(blob), "track")
        converted = conversion("track", old.schema, str, state_type).table(old)
        data = encode_snapshot("track", str, state_type, converted, [], None, None, False)
        db.execute("UPDATE snaps SET ser_change = ? WHERE step_id = 'evolution.track'"
                   " AND state_key = ?", (pickle.dumps(data), group))
    table = read_state(rec, "track")
    value = table.schema.field("value").type
    assert [value.field(i).name for i in range(value.num_fields)] == [
        "lines", "total_len", "span", "origin"]
    rows = {r["key"]: r["value"] for r in table.to_pylist()}
    moved = set(old.column("key").to_pylist())
    assert rows.keys() == crashed["saved"].keys()
    for key, v in rows.items():
        assert v["total_len"] == float(crashed["saved"][key]["total_len"])
        # Read without the flow, a field added since a group's snapshot is null.
        assert v["origin"] == ("checkpoint" if key in moved else None)


def test_migrate_keeps_incremental_files_a_renamed_step_uses(
    crashed_incremental: dict[str, Any], tmp_path: Path
) -> None:
    rec = tmp_path / "rec"
    shutil.copytree(crashed_incremental["rec"], rec)
    files = sorted((rec / "flowlib-state" / "track").rglob("*.*"))
    assert files
    assert checkpoint_cli("migrate", rec, "--rename", "track=tracker")[0] == 0
    # tracker's records still name the files under track/: they stay, and the old name
    # cannot go to a new step (whose garbage collection would delete them).
    assert sorted((rec / "flowlib-state" / "track").rglob("*.*")) == files
    code, _, err = checkpoint_cli("migrate", rec, "--add", "track")
    assert code == 1 and "flowlib-state/track holds incremental checkpoint files" in err
    assert read_state(rec, "tracker").num_rows == len(crashed_incremental["saved"])
    # Once no record names them (the step is dropped), the next migrate deletes them.
    assert checkpoint_cli("migrate", rec, "--drop", "tracker")[0] == 0
    assert not (rec / "flowlib-state" / "track").exists()
