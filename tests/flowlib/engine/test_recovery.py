"""``migrate``: renaming, dropping and adding stateful steps of a recovery directory."""

from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from flowlib import Flow, JsonLinesSink, ListSource
from flowlib.engine._recovery import MANIFEST, migrate
from flowlib.engine._run import prepare_run
from flowlib.errors import FlowlibError

# The columns of bytewax's ``snaps`` table that migrate reads and writes.
SNAPS = """CREATE TABLE snaps (step_id TEXT NOT NULL, state_key TEXT NOT NULL,
           snap_epoch INTEGER NOT NULL, ser_change BLOB,
           PRIMARY KEY (step_id, state_key, snap_epoch))"""


def directory(tmp_path: Path, steps: list[str], partitions: int = 2) -> Path:
    """A recovery dir of flow ``f`` whose stateful ``steps`` have one row per partition, plus
    a source ``src`` with its own state."""
    for i in range(partitions):
        with sqlite3.connect(tmp_path / f"part-{i}.sqlite3") as db:
            db.execute(SNAPS)
            for s in [*steps, "src"]:
                db.execute("INSERT INTO snaps VALUES (?, ?, 1, ?)",
                           (f"f.{s}", str(i), pickle.dumps(s.encode())))
    manifest = {"flowlib_version": "0", "flow": "f", "max_key_groups": 4,
                "stateful_steps": [{"id": s, "key_type": "str", "state_type": "int",
                                    "schemas": []} for s in steps]}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    return tmp_path


def rows(root: Path) -> list[tuple[str, str, bytes]]:
    out = []
    for part in sorted(root.glob("part-*.sqlite3")):
        with sqlite3.connect(part) as db:
            out += db.execute("SELECT step_id, state_key, ser_change FROM snaps").fetchall()
    return sorted(out)


def ids(root: Path) -> list[str]:
    return [s["id"] for s in json.loads((root / MANIFEST).read_text())["stateful_steps"]]


def test_rename_moves_the_state_in_every_partition_and_swaps_work(tmp_path: Path) -> None:
    root = directory(tmp_path, ["a", "b", "c"])
    done = migrate(root, renames={"a": "b", "b": "a", "c": "d"})
    assert done == ["renamed 'a' to 'b'", "renamed 'b' to 'a'", "renamed 'c' to 'd'"]
    assert ids(root) == ["b", "a", "d"]
    assert rows(root) == sorted(
        [(f"f.{new}", str(i), pickle.dumps(old.encode())) for i in range(2)
         for old, new in [("a", "b"), ("b", "a"), ("c", "d"), ("src", "src")]])


def test_drop_and_add(tmp_path: Path) -> None:
    root = directory(tmp_path, ["a", "b"])
    assert migrate(root, drops=["a"], adds=["n"]) == [
        "dropped 'a' (its state is deleted)", "added 'n' (starts empty)"]
    assert ids(root) == ["b", "n"]
    assert {r[0] for r in rows(root)} == {"f.b", "f.src"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"renames": {"x": "y"}}, "--rename x=y: no stateful step 'x'"),
        ({"renames": {"a": "b"}}, "--rename a=b: step 'b' already has state"),
        ({"renames": {"a": "src"}}, "--rename a=src: part-0.sqlite3 has state for 'src'"),
        ({"renames": {"a": "z", "b": "z"}}, "'z' is the target twice"),
        ({"drops": ["x"]}, "--drop x: no stateful step 'x'"),
        ({"adds": ["a"]}, "--add a: step 'a' already has state"),
    ],
)
def test_a_wrong_name_changes_nothing(tmp_path: Path, kwargs: dict[str, object],
                                      error: str) -> None:
    root = directory(tmp_path, ["a", "b"])
    before = (rows(root), (root / MANIFEST).read_text())
    with pytest.raises(FlowlibError, match=error.replace("[", r"\[")):
        migrate(root, **kwargs)  # type: ignore[arg-type]
    assert (rows(root), (root / MANIFEST).read_text()) == before


def test_a_run_killed_while_preparing_starts_fresh_again_sinks_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sinks are prepared before the recovery directory is initialised: a run killed in
    between leaves a directory the next run treats as new, so it prepares every sink again."""
    out = tmp_path / "out"
    out.mkdir()
    flow = Flow("two_sinks")
    nums = flow.source(ListSource(range(3), int), name="nums")
    nums.sink(JsonLinesSink(out / "a.jsonl", int), name="a")
    nums.sink(JsonLinesSink(out / "b.jsonl", int), name="b")
    for name in ("a", "b", "dead_letters"):
        (out / f"{name}.jsonl").write_text("stale\n")  # an earlier run's output
    rec = tmp_path / "rec"
    real_prepare = JsonLinesSink.prepare

    def killed_at_b(self: JsonLinesSink[Any]) -> None:
        if self.path.name == "b.jsonl":
            raise KeyboardInterrupt  # stands for the kill
        real_prepare(self)

    monkeypatch.setattr(JsonLinesSink, "prepare", killed_at_b)
    with pytest.raises(KeyboardInterrupt):
        prepare_run(flow, rec, 1)
    assert not list(rec.glob("part-*.sqlite3"))  # not initialised: the next run is fresh
    monkeypatch.setattr(JsonLinesSink, "prepare", real_prepare)
    prepare_run(flow, rec, 1)
    assert list(rec.glob("part-*.sqlite3"))
    assert [(out / f"{n}.jsonl").read_text() for n in ("a", "b", "dead_letters")] == ["", "", ""]
