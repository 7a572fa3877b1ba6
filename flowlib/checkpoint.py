"""Reading checkpoints: the keyed state of a step as an Arrow table.

A recovery directory holds bytewax's partitions (SQLite files) whose snapshots of flowlib's
keyed steps are Arrow IPC bytes, one per key group. :func:`read_state` gathers the latest
committed snapshot of every key group of a step into one table with typed ``key`` and ``value``
columns; :func:`describe` summarises a directory (what ``flowlib checkpoint ls`` prints).

A snapshot of an incremental checkpoint is a record naming a base file and delta files under
``DIR/flowlib-state/``; the readers resolve it (every file checked against its recorded size
and CRC-32) into the same table.

bytewax deletes, at each commit, the snapshots that the committed epoch supersedes. A directory
therefore holds the state of its last committed epoch, plus the snapshots of later epochs that a
run wrote before it stopped without committing them (a resume discards those).
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from flowlib.engine._evolution import conform_arrow, schema_from_text
from flowlib.engine._recovery import MANIFEST
from flowlib.engine._segment_files import STATE_DIR, step_dir
from flowlib.engine._snapshots import read_state_table
from flowlib.errors import FlowlibError

__all__ = ["CheckpointInfo", "Execution", "StepInfo", "describe", "read_state"]


@dataclass(frozen=True)
class Execution:
    """One run over the directory, as bytewax records it (``exs`` table)."""

    number: int
    workers: int
    resume_epoch: int


@dataclass(frozen=True)
class StepInfo:
    """A stateful step of a checkpoint: its types and what is stored for it."""

    id: str
    key_type: str
    state_type: str
    key_groups: int  # key groups holding state at the committed epoch
    snapshots: int  # stored snapshot rows, any epoch
    bytes: int  # their total size as stored
    files: int = 0  # base and delta files of incremental checkpoints, any epoch
    file_bytes: int = 0  # their total size


@dataclass(frozen=True)
class CheckpointInfo:
    """Summary of a recovery directory."""

    directory: Path
    flow: str
    flowlib_version: str
    max_key_groups: int
    partitions: int
    executions: list[Execution]
    committed_epoch: int  # the epoch a resume starts after (smallest over partitions)
    stored_epochs: list[int]  # epochs that still have snapshots of stateful steps
    steps: list[StepInfo]


def _manifest(root: Path) -> dict[str, Any]:
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        msg = f"{root} is not a flowlib recovery directory (no {MANIFEST})"
        raise FlowlibError(msg)
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    return manifest


def _partitions(root: Path) -> list[Path]:
    return sorted(root.glob("part-*.sqlite3"))


@contextmanager
def _connect(part: Path) -> Iterator[sqlite3.Connection]:
    # read-only: inspecting a checkpoint must never change it
    db = sqlite3.connect(f"{part.resolve().as_uri()}?mode=ro", uri=True)
    try:
        yield db
    finally:
        db.close()


def _committed(db: sqlite3.Connection) -> int:
    (committed,) = db.execute("SELECT COALESCE(MAX(commit_epoch), 0) FROM commits").fetchone()
    return int(committed)


def read_state(
    directory: str | os.PathLike[str], step: str, epoch: int | None = None
) -> pa.Table:
    """The state of stateful step ``step`` at the last committed checkpoint in ``directory``.

    With ``epoch``, the state as of that epoch instead: it must be at least the committed epoch
    (older snapshots are deleted by bytewax as it commits); a later one reads snapshots that a
    run wrote but did not commit before it stopped (for inspecting a crash).

    >>> read_state("no-such-dir", "count")
    Traceback (most recent call last):
    ...
    flowlib.errors.FlowlibError: no-such-dir is not a flowlib recovery directory (no ...)
    """
    root = Path(directory)
    manifest = _manifest(root)
    steps = [s["id"] for s in manifest["stateful_steps"]]
    if step not in steps:
        msg = f"no stateful step {step!r} in {root}; it has: {', '.join(steps) or 'none'}"
        raise FlowlibError(msg)
    step_id = f"{manifest['flow']}.{step}"
    tables: list[pa.Table] = []
    for part in _partitions(root):
        with _connect(part) as db:
            committed = _committed(db)
            if epoch is not None and epoch < committed:
                msg = (
                    f"epoch {epoch} of {root} is no longer stored: bytewax deleted its "
                    f"snapshots when it committed epoch {committed}; give --epoch {committed} "
                    "or later (see flowlib checkpoint ls)"
                )
                raise FlowlibError(msg)
            upto = committed if epoch is None else epoch
            rows = db.execute(
                "SELECT s.ser_change FROM snaps s JOIN ("
                "  SELECT state_key, MAX(snap_epoch) AS e FROM snaps"
                "  WHERE step_id = ? AND snap_epoch <= ? GROUP BY state_key"
                ") latest ON s.state_key = latest.state_key AND s.snap_epoch = latest.e"
                " WHERE s.step_id = ?",
                (step_id, upto, step_id),
            ).fetchall()
        for (blob,) in rows:
            if blob is None:  # the group was discarded
                continue
            data = pickle.loads(blob)  # bytewax's own framing of our bytes
            if data is not None:
                tables.append(read_state_table(data, step, root))
    if not tables:
        at = "committed state" if epoch is None else f"state at epoch {epoch}"
        msg = f"step {step!r} has no {at} in {root}"
        raise FlowlibError(msg)
    return _one_table(tables, manifest, step)


def _one_table(tables: list[pa.Table], manifest: dict[str, Any], step: str) -> pa.Table:
    """The groups' tables as one; after a schema change, groups that saw no event since still
    hold the old schema: each is conformed to the newest one the manifest records."""
    tables = [t.replace_schema_metadata(None) for t in tables]
    if len({t.schema for t in tables}) > 1:
        entry = next(s for s in manifest["stateful_steps"] if s["id"] == step)
        if entry.get("schemas"):
            newest = schema_from_text(entry["schemas"][-1]["arrow"])
            tables = [t if t.schema == newest else conform_arrow(t, newest) for t in tables]
        else:
            return pa.concat_tables(tables, promote_options="permissive")
    return pa.concat_tables(tables)


def _files(root: Path, step: str) -> tuple[int, int]:
    """Count and total size of the incremental checkpoint files of ``step``."""
    sizes = [p.stat().st_size for p in (root / STATE_DIR / step_dir(step)).glob("*/*")]
    return len(sizes), sum(sizes)


def describe(directory: str | os.PathLike[str]) -> CheckpointInfo:
    """What a recovery directory holds: flow, runs, epochs and per-step snapshot sizes.

    >>> describe("no-such-dir")
    Traceback (most recent call last):
    ...
    flowlib.errors.FlowlibError: no-such-dir is not a flowlib recovery directory (no ...)
    """
    root = Path(directory)
    manifest = _manifest(root)
    flow = manifest["flow"]
    parts = _partitions(root)
    executions: dict[int, Execution] = {}
    committed: list[int] = []
    epochs: set[int] = set()
    ids = [s["id"] for s in manifest["stateful_steps"]]
    groups = dict.fromkeys(ids, 0)
    snaps = dict.fromkeys(ids, 0)
    sizes = dict.fromkeys(ids, 0)
    for part in parts:
        with _connect(part) as db:
            for ex, workers, resume in db.execute(
                "SELECT ex_num, worker_count, resume_epoch FROM exs"
            ):
                executions[ex] = Execution(ex, workers, resume)
            upto = _committed(db)
            committed.append(upto)
            for sid in ids:
                step_id = f"{flow}.{sid}"
                n, size = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(ser_change)), 0) FROM snaps"
                    " WHERE step_id = ?", (step_id,)).fetchone()
                snaps[sid] += n
                sizes[sid] += size
                (live,) = db.execute(
                    "SELECT COUNT(*) FROM snaps s JOIN ("
                    "  SELECT state_key, MAX(snap_epoch) AS e FROM snaps"
                    "  WHERE step_id = ? AND snap_epoch <= ? GROUP BY state_key"
                    ") latest ON s.state_key = latest.state_key AND s.snap_epoch = latest.e"
                    " WHERE s.step_id = ? AND s.ser_change IS NOT NULL",
                    (step_id, upto, step_id)).fetchone()
                groups[sid] += live
                epochs.update(e for (e,) in db.execute(
                    "SELECT DISTINCT snap_epoch FROM snaps WHERE step_id = ?", (step_id,)))
    steps = [
        StepInfo(s["id"], s["key_type"], s["state_type"], groups[s["id"]], snaps[s["id"]],
                 sizes[s["id"]], *_files(root, s["id"]))
        for s in manifest["stateful_steps"]
    ]
    return CheckpointInfo(
        root, flow, manifest.get("flowlib_version", "?"), manifest["max_key_groups"],
        len(parts), sorted(executions.values(), key=lambda e: e.number),
        min(committed, default=0), sorted(epochs), steps,
    )
