"""Recovery directories: bytewax's partitions plus flowlib's manifest of stateful steps.

The manifest records, per stateful step, its id, key/state types and every Arrow schema its
snapshots may have been written with (with the Python type names of each field). Before any event
runs, a resume is checked against it (:func:`check_resume`): stateful steps renamed, removed or
added are refused by name (bytewax keys state by step id and would silently start empty) unless
mapped explicitly with :func:`migrate`, and a changed state type is refused unless
:mod:`~flowlib.engine._evolution` can convert it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from bytewax.recovery import init_db_dir

from flowlib import __version__
from flowlib._graph import ProcessNode, walk
from flowlib._types import type_name
from flowlib.codecs import codec_for
from flowlib.engine._evolution import (
    Change,
    Incompatible,
    conversion,
    schema_from_text,
    schema_to_text,
    type_names,
)
from flowlib.engine._segment_files import STATE_DIR, step_dir
from flowlib.engine._snapshots import (
    INCREMENTAL_VERSIONS,
    read_state_table,
    record_files,
    schema_fingerprint,
    snapshot_version,
)
from flowlib.errors import FlowBuildError, FlowlibError, StateSchemaError
from flowlib.flow import Flow
from flowlib.state import snapshot_schema

__all__ = [
    "MANIFEST",
    "ResumeCheck",
    "StepCheck",
    "check_resume",
    "manifest_of",
    "migrate",
    "prepare_recovery_dir",
]

MANIFEST = "flowlib-manifest.json"


def _stateful(flow: Flow) -> list[ProcessNode]:
    return [n for n in walk(flow.sinks) if isinstance(n, ProcessNode) and n.key_fn is not None]


def _schema_entry(key_type: object, state_type: object) -> dict[str, Any]:
    schema = snapshot_schema(codec_for(key_type), codec_for(state_type))
    return {
        "fingerprint": schema_fingerprint(schema),
        "key_type": type_name(key_type),
        "state_type": type_name(state_type),
        "arrow": schema_to_text(schema),
        "names": {"key": type_names(key_type), "state": type_names(state_type)},
    }


def manifest_of(flow: Flow) -> dict[str, Any]:
    steps = [
        {
            "id": n.id,
            "key_type": type_name(n.key_type),
            "state_type": type_name(n.state_type),
            "schemas": [_schema_entry(n.key_type, n.state_type)],
        }
        for n in _stateful(flow)
    ]
    return {
        "flowlib_version": __version__,
        "flow": flow.name,
        "max_key_groups": flow.max_key_groups,
        "stateful_steps": steps,
    }


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    # Written whole then renamed: a crash leaves the old manifest or the new one, never half.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.exists():
        msg = f"{directory} holds recovery partitions but no {MANIFEST}: not written by flowlib"
        raise FlowBuildError(msg)
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


@dataclass
class StepCheck:
    """What a resume would do with one stateful step."""

    id: str
    status: Literal["unchanged", "compatible", "incompatible", "removed", "added", "new (empty)"]
    changes: list[Change] = field(default_factory=list)
    problem: str | None = None


@dataclass
class ResumeCheck:
    """Whether a flow can resume from a recovery directory, step by step."""

    directory: Path
    flow: str
    problems: list[str]  # flow-level: name, key-group count
    steps: list[StepCheck]

    @property
    def resumable(self) -> bool:
        return not self.problems and all(
            s.status not in ("incompatible", "removed", "added") for s in self.steps)

    def refusal(self) -> FlowlibError:
        """The error a run raises when not :attr:`resumable`, every reason named."""
        names = [*self.problems] + [
            s.problem for s in self.steps if s.status in ("removed", "added") and s.problem]
        schemas = [s.problem for s in self.steps if s.status == "incompatible" and s.problem]
        if names:
            return FlowBuildError(
                f"cannot resume flow {self.flow!r} from {self.directory}: "
                + "; ".join(names + schemas)
                + ". Restore the old step ids, map them (flowlib checkpoint migrate), or start "
                "with an empty recovery directory"
            )
        return StateSchemaError("; ".join(schemas))


def check_resume(flow: Flow, directory: Path) -> ResumeCheck:
    """Compare ``flow`` with the checkpoint in ``directory`` without changing either."""
    saved = _read_manifest(directory)
    problems = []
    if saved["flow"] != flow.name:
        problems.append(f"it was written by flow {saved['flow']!r}")
    if saved["max_key_groups"] != flow.max_key_groups:
        problems.append(
            f"max_key_groups was {saved['max_key_groups']}, now {flow.max_key_groups}")
    old = {s["id"]: s for s in saved["stateful_steps"]}
    new = {n.id: n for n in _stateful(flow)}
    steps: list[StepCheck] = []
    gone = [s for s in old if s not in new]
    added = [s for s in new if s not in old]
    for sid in gone:
        candidates = [a for a in added if _fingerprints(old[sid]) & {_current_fp(new[a])}]
        hint = f" (renamed to {candidates[0]!r}?)" if candidates else ""
        example = candidates[0] if candidates else "NEW"
        steps.append(StepCheck(sid, "removed", problem=(
            f"stateful step {sid!r} is no longer in the flow{hint}; map it with "
            f"`flowlib checkpoint migrate {directory} --rename {sid}={example}` or drop its "
            f"state with `--drop {sid}`")))
    for sid in added:
        steps.append(StepCheck(sid, "added", problem=(
            f"stateful step {sid!r} is new: it would start empty while the sources resume "
            f"mid-input; accept that with `flowlib checkpoint migrate {directory} --add {sid}`")))
    for sid, node in new.items():
        if sid in old:
            steps.append(_check_step(flow, directory, old[sid], node))
    order = {sid: i for i, sid in enumerate([*new, *gone])}
    steps.sort(key=lambda s: order[s.id])
    return ResumeCheck(directory, flow.name, problems, steps)


def _current_fp(node: ProcessNode) -> str:
    return schema_fingerprint(snapshot_schema(codec_for(node.key_type),
                                              codec_for(node.state_type)))


def _fingerprints(entry: dict[str, Any]) -> set[str]:
    return {s["fingerprint"] for s in entry.get("schemas", [])}


def _check_step(
    flow: Flow, directory: Path, entry: dict[str, Any], node: ProcessNode
) -> StepCheck:
    current = _current_fp(node)
    stored = _stored_schemas(flow, directory, entry)
    if not stored:
        return StepCheck(node.id, "new (empty)")
    changes: list[Change] = []
    for schema, names in stored:
        if schema_fingerprint(schema) == current:
            continue
        try:
            conv = conversion(node.id, schema, node.key_type, node.state_type,
                              max_key_groups=flow.max_key_groups, old_names=names)
        except Incompatible as exc:
            return StepCheck(node.id, "incompatible", problem=str(exc))
        changes += [c for c in conv.changes if c not in changes]
    return StepCheck(node.id, "compatible" if changes else "unchanged", changes)


def _stored_schemas(
    flow: Flow, directory: Path, entry: dict[str, Any]
) -> list[tuple[pa.Schema, dict[str, dict[str, str]]]]:
    """Every schema the step's snapshots may have: from the manifest, or (manifests written
    before schemas were recorded) read from the latest snapshots themselves."""
    if "schemas" in entry:
        return [(schema_from_text(s["arrow"]), s.get("names", {})) for s in entry["schemas"]]
    found: dict[str, pa.Schema] = {}
    for data in _latest_snapshots(directory, f"{flow.name}.{entry['id']}"):
        schema = read_state_table(data, entry["id"], directory).schema.remove_metadata()
        found.setdefault(schema_fingerprint(schema), schema)
    return [(s, {}) for s in found.values()]


def _latest_snapshots(directory: Path, step_id: str) -> Iterator[bytes]:
    for part in sorted(directory.glob("part-*.sqlite3")):
        uri = f"{part.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute(
                "SELECT s.ser_change FROM snaps s JOIN ("
                "  SELECT state_key, MAX(snap_epoch) AS e FROM snaps WHERE step_id = ?"
                "  GROUP BY state_key"
                ") latest ON s.state_key = latest.state_key AND s.snap_epoch = latest.e"
                " WHERE s.step_id = ? AND s.ser_change IS NOT NULL",
                (step_id, step_id),
            ).fetchall()
        for (blob,) in rows:
            data = pickle.loads(blob)  # bytewax's own framing of our bytes
            if isinstance(data, bytes):
                yield data


def recovery_dir_is_new(directory: Path) -> bool:
    """Whether ``directory`` holds no initialised recovery store (a run there starts fresh)."""
    return not any(directory.glob("part-*.sqlite3"))


def prepare_recovery_dir(flow: Flow, directory: Path, partitions: int) -> bool:
    """Create and initialise ``directory`` when new; otherwise check it fits ``flow``.

    Runs before any event: a resume that would lose or misread state is refused here, naming
    every step (and field) at fault. Returns whether the run starts fresh.
    """
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST
    if recovery_dir_is_new(directory):
        # Manifest first, partitions last and each renamed into place: a kill -9 at any point
        # of this leaves a directory that starts fresh or resumes, never "no manifest".
        _write_manifest(manifest_path, manifest_of(flow))
        staging = directory / ".flowlib-init"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        init_db_dir(staging, partitions)
        for part in sorted(staging.glob("part-*.sqlite3")):
            os.replace(part, directory / part.name)
        shutil.rmtree(staging, ignore_errors=True)
        return True
    check = check_resume(flow, directory)
    if not check.resumable:
        raise check.refusal()
    _record_schemas(manifest_path, flow)
    return False


def _record_schemas(manifest_path: Path, flow: Flow) -> None:
    """Add the flow's schemas to the manifest: from now on snapshots may be written with them
    (while key groups that see no event keep their old ones)."""
    manifest = json.loads(manifest_path.read_text())
    entries = {s["id"]: s for s in manifest["stateful_steps"]}
    changed = False
    for node in _stateful(flow):
        entry = entries[node.id]
        if "schemas" not in entry:  # a legacy manifest: nothing recorded, nothing to extend
            continue
        fp = _current_fp(node)
        if fp not in _fingerprints(entry):
            entry["schemas"].append(_schema_entry(node.key_type, node.state_type))
            entry["key_type"] = type_name(node.key_type)
            entry["state_type"] = type_name(node.state_type)
            changed = True
    if changed:
        _write_manifest(manifest_path, manifest)


def migrate(
    directory: Path,
    renames: dict[str, str] | None = None,
    drops: list[str] | None = None,
    adds: list[str] | None = None,
) -> list[str]:
    """Map stateful steps of a stopped flow's checkpoint: rename, drop, or declare new ones.

    Renaming moves the step's snapshots to the new id in every partition; dropping deletes them;
    adding records a step that will start empty. All names are checked before anything changes.
    Returns what was done, one line per step. Running it again after an interruption finishes
    the job (the manifest is written last).
    """
    renames, drops, adds = renames or {}, drops or [], adds or []
    manifest = _read_manifest(directory)
    flow = manifest["flow"]
    ids = [s["id"] for s in manifest["stateful_steps"]]
    errors = []
    for old, new in renames.items():
        if old not in ids:
            errors.append(f"--rename {old}={new}: no stateful step {old!r}")
        if new in ids and new not in renames and new not in drops:
            errors.append(f"--rename {old}={new}: step {new!r} already has state")
    targets = list(renames.values())
    errors += [f"--rename: {t!r} is the target twice" for t in set(targets)
               if targets.count(t) > 1]
    errors += [f"--drop {d}: no stateful step {d!r}" for d in drops if d not in ids]
    errors += [f"--drop {d}: also renamed" for d in drops if d in renames]
    final = [renames.get(i, i) for i in ids if i not in drops]
    errors += [f"--add {a}: step {a!r} already has state" for a in adds if a in final]
    # Incremental checkpoint files stay where they were written (records name them by path),
    # so a renamed step's files remain in its old directory. A step given that old name would
    # collect them as its own garbage: refused while any record still names them.
    in_use = _referenced_dirs(directory, flow, [i for i in ids if i not in drops])
    for new in [*renames.values(), *adds]:
        if new not in ids and step_dir(new) in in_use:
            errors.append(f"{new!r}: {STATE_DIR}/{step_dir(new)} holds incremental checkpoint "
                          "files another step still uses; choose another name")
    for part in sorted(directory.glob("part-*.sqlite3")):
        with closing(sqlite3.connect(f"{part.resolve().as_uri()}?mode=ro", uri=True)) as db:
            for old, new in renames.items():
                if new in ids:
                    continue
                (n,) = db.execute("SELECT COUNT(*) FROM snaps WHERE step_id = ?",
                                  (f"{flow}.{new}",)).fetchone()
                if n:  # a source or sink of that name keeps its own state under the id
                    errors.append(f"--rename {old}={new}: {part.name} has state for {new!r}")
    if errors:
        raise FlowlibError(f"{directory}: " + "; ".join(errors) + f" (stateful steps: "
                           f"{', '.join(ids) or 'none'})")
    for part in sorted(directory.glob("part-*.sqlite3")):
        with closing(sqlite3.connect(part)) as db, db:  # one transaction per partition
            for d in drops:
                db.execute("DELETE FROM snaps WHERE step_id = ?", (f"{flow}.{d}",))
            # Via temporary ids, so that swapping two steps' names works.
            for i, old in enumerate(renames):
                db.execute("UPDATE snaps SET step_id = ? WHERE step_id = ?",
                           (f"\x00migrate{i}", f"{flow}.{old}"))
            for i, new in enumerate(renames.values()):
                db.execute("UPDATE snaps SET step_id = ? WHERE step_id = ?",
                           (f"{flow}.{new}", f"\x00migrate{i}"))
    done = []
    steps = []
    for entry in manifest["stateful_steps"]:
        sid = entry["id"]
        if sid in drops:
            done.append(f"dropped {sid!r} (its state is deleted)")
            continue
        if sid in renames:
            entry["id"] = renames[sid]
            done.append(f"renamed {sid!r} to {renames[sid]!r}")
        steps.append(entry)
    for a in adds:
        steps.append({"id": a, "key_type": "?", "state_type": "?", "schemas": []})
        done.append(f"added {a!r} (starts empty)")
    manifest["stateful_steps"] = steps
    _write_manifest(directory / MANIFEST, manifest)
    _remove_unused_files(directory, flow, [s["id"] for s in steps])
    return done


def _referenced_dirs(directory: Path, flow: str, steps: list[str]) -> set[str]:
    """The step directories (under ``STATE_DIR``) that a stored record of ``steps`` names."""
    used: set[str] = set()
    wanted = {f"{flow}.{s}" for s in steps}  # sources and sinks keep other (pickled) state
    for part in sorted(directory.glob("part-*.sqlite3")):
        uri = f"{part.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute(
                "SELECT step_id, ser_change FROM snaps WHERE ser_change IS NOT NULL").fetchall()
        for step_id, blob in rows:
            if step_id not in wanted:
                continue
            data = pickle.loads(blob)
            if isinstance(data, bytes) and snapshot_version(data) in INCREMENTAL_VERSIONS:
                used.update(path.split("/")[1] for path in record_files(data, step_id)[0])
    return used


def _remove_unused_files(directory: Path, flow: str, steps: list[str]) -> None:
    """Delete incremental checkpoint files of steps that no longer exist and no record names
    (a dropped step's; a renamed step's once it has compacted into its new directory)."""
    root = directory / STATE_DIR
    if not root.is_dir():
        return
    current = {step_dir(s) for s in steps}
    in_use = _referenced_dirs(directory, flow, steps)
    for d in root.iterdir():
        if d.is_dir() and d.name not in current and d.name not in in_use:
            shutil.rmtree(d)
