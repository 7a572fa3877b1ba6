"""Recovery directories: bytewax's partitions plus flowlib's manifest of stateful steps.

The manifest records, per stateful step, its id and key/state types, so resuming onto a flow whose
stateful steps were renamed or removed is refused by name instead of silently losing state
(bytewax keys state by step id).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bytewax.recovery import init_db_dir

from flowlib import __version__
from flowlib._graph import ProcessNode, walk
from flowlib._types import type_name
from flowlib.errors import FlowBuildError
from flowlib.flow import Flow

__all__ = ["MANIFEST", "manifest_of", "prepare_recovery_dir"]

MANIFEST = "flowlib-manifest.json"


def manifest_of(flow: Flow) -> dict[str, Any]:
    steps = [
        {"id": n.id, "key_type": type_name(n.key_type), "state_type": type_name(n.state_type)}
        for n in walk(flow.sinks)
        if isinstance(n, ProcessNode) and n.key_fn is not None
    ]
    return {
        "flowlib_version": __version__,
        "flow": flow.name,
        "max_key_groups": flow.max_key_groups,
        "stateful_steps": steps,
    }


def prepare_recovery_dir(flow: Flow, directory: Path, partitions: int) -> bool:
    """Create and initialise ``directory`` when new; otherwise check it fits ``flow``.

    Returns whether the run starts fresh (no checkpoint to resume from).
    """
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST
    current = manifest_of(flow)
    if not any(directory.glob("part-*.sqlite3")):
        init_db_dir(directory, partitions)
        manifest_path.write_text(json.dumps(current, indent=2) + "\n")
        return True
    if not manifest_path.exists():
        msg = f"{directory} holds recovery partitions but no {MANIFEST}: not written by flowlib"
        raise FlowBuildError(msg)
    saved = json.loads(manifest_path.read_text())
    problems = _differences(saved, current)
    if problems:
        msg = (
            f"cannot resume flow {flow.name!r} from {directory}: "
            + "; ".join(problems)
            + ". Restore the old step ids, or start with an empty recovery directory"
        )
        raise FlowBuildError(msg)
    return False


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    out = []
    if saved["flow"] != current["flow"]:
        out.append(f"it was written by flow {saved['flow']!r}")
    if saved["max_key_groups"] != current["max_key_groups"]:
        out.append(
            f"max_key_groups was {saved['max_key_groups']}, now {current['max_key_groups']}"
        )
    old = {s["id"]: s for s in saved["stateful_steps"]}
    new = {s["id"]: s for s in current["stateful_steps"]}
    for gone in sorted(old.keys() - new.keys()):
        out.append(f"stateful step {gone!r} is no longer in the flow (renamed or removed?)")
    for added in sorted(new.keys() - old.keys()):
        out.append(f"stateful step {added!r} is new")
    return out
