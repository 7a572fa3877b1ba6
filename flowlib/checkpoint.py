"""Reading checkpoints: the keyed state of a step as an Arrow table.

A recovery directory holds bytewax's partitions (SQLite files) whose snapshots of flowlib's
keyed steps are Arrow IPC bytes, one per key group. :func:`read_state` gathers the latest
committed snapshot of every key group of a step into one table with typed ``key`` and ``value``
columns.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from pathlib import Path

import pyarrow as pa

from flowlib.engine._recovery import MANIFEST
from flowlib.engine._snapshots import read_state_table
from flowlib.errors import FlowlibError

__all__ = ["read_state"]


def read_state(directory: str | os.PathLike[str], step: str) -> pa.Table:
    """The state of stateful step ``step`` at the last committed checkpoint in ``directory``.

    >>> read_state("no-such-dir", "count")
    Traceback (most recent call last):
    ...
    flowlib.errors.FlowlibError: no-such-dir is not a flowlib recovery directory (no ...)
    """
    root = Path(directory)
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        msg = f"{root} is not a flowlib recovery directory (no {MANIFEST})"
        raise FlowlibError(msg)
    manifest = json.loads(manifest_path.read_text())
    steps = [s["id"] for s in manifest["stateful_steps"]]
    if step not in steps:
        msg = f"no stateful step {step!r} in {root}; it has: {', '.join(steps) or 'none'}"
        raise FlowlibError(msg)
    step_id = f"{manifest['flow']}.{step}"
    tables: list[pa.Table] = []
    for part in sorted(root.glob("part-*.sqlite3")):
        with sqlite3.connect(part) as db:
            (committed,) = db.execute(
                "SELECT COALESCE(MAX(commit_epoch), 0) FROM commits"
            ).fetchone()
            rows = db.execute(
                "SELECT s.ser_change FROM snaps s JOIN ("
                "  SELECT state_key, MAX(snap_epoch) AS e FROM snaps"
                "  WHERE step_id = ? AND snap_epoch <= ? GROUP BY state_key"
                ") latest ON s.state_key = latest.state_key AND s.snap_epoch = latest.e"
                " WHERE s.step_id = ?",
                (step_id, committed, step_id),
            ).fetchall()
        for (blob,) in rows:
            if blob is None:  # the group was discarded
                continue
            data = pickle.loads(blob)  # bytewax's own framing of our bytes
            if data is not None:
                tables.append(read_state_table(data, step))
    if not tables:
        msg = f"step {step!r} has no committed state in {root}"
        raise FlowlibError(msg)
    return pa.concat_tables(tables).replace_schema_metadata(None)
