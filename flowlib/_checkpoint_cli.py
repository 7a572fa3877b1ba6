"""``flowlib checkpoint ls|show|export|check|migrate``: inspect a recovery directory without
running the flow, check that a changed flow can resume from it, map renamed or removed steps.

CSV export flattens structs into one column per field (``value.attempts``) and writes lists and
maps as JSON text, so that one key stays one row and any CSV reader gets it back; Parquet and
Arrow keep the full types.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from flowlib._script import load_flow
from flowlib.checkpoint import describe, read_state
from flowlib.engine._recovery import ResumeCheck, check_resume, migrate
from flowlib.errors import FlowlibError

__all__ = ["main", "to_csv_table"]

_WIDTH = 40  # widest cell shown by ``show``


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowlib checkpoint",
        description="Inspect a recovery directory (read-only, except migrate).",
    )
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("ls", help="flow, runs, epochs and stateful steps of DIR")
    ls.add_argument("directory", metavar="DIR", type=Path)
    show = sub.add_parser("show", help="keys and state values of STEP as a table")
    show.add_argument("directory", metavar="DIR", type=Path)
    show.add_argument("step", metavar="STEP")
    show.add_argument("--epoch", type=int, help="epoch to read (default: the committed one)")
    show.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    ex = sub.add_parser(
        "export", help="write the state of STEP to OUT (.parquet, .arrow or .csv)",
        description="Write the key/value table of STEP to OUT; the suffix picks the format. "
        "CSV flattens structs into a column per field (value.FIELD) and writes lists and maps "
        "as JSON text.",
    )
    ex.add_argument("directory", metavar="DIR", type=Path)
    ex.add_argument("step", metavar="STEP")
    ex.add_argument("out", metavar="OUT", type=Path)
    ex.add_argument("--epoch", type=int, help="epoch to read (default: the committed one)")
    ch = sub.add_parser(
        "check", help="can the flow of SCRIPT resume from DIR? (exit 0: yes, 1: no)",
        description="Load the flow of SCRIPT[:VARIABLE] without running it and compare it with "
        "the checkpoint in DIR, per stateful step: unchanged, compatible (what a resume converts) "
        "or incompatible (why), and steps renamed, removed or added. Arguments after SCRIPT go "
        "to the script, as with flowlib run.",
    )
    ch.add_argument("directory", metavar="DIR", type=Path)
    ch.add_argument("target", metavar="SCRIPT[:VARIABLE]")
    ch.add_argument("script_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    mi = sub.add_parser(
        "migrate", help="rename, drop or add stateful steps of DIR (the flow stopped)",
        description="Rewrite DIR for a flow whose stateful steps were renamed, removed or added: "
        "--rename moves a step's state to its new id, --drop deletes a step's state, --add "
        "accepts a new step that starts empty. Run it while no flow uses DIR.",
    )
    mi.add_argument("directory", metavar="DIR", type=Path)
    mi.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                    help="the step OLD is now called NEW (repeatable)")
    mi.add_argument("--drop", action="append", default=[], metavar="STEP",
                    help="delete the state of STEP, no longer in the flow (repeatable)")
    mi.add_argument("--add", action="append", default=[], metavar="STEP",
                    help="STEP is new in the flow and starts empty (repeatable)")
    return p


def main(argv: list[str], out: TextIO | None = None) -> int:
    """Run ``flowlib checkpoint ARGV``; returns the exit status."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.action == "ls":
            _ls(args.directory, out)
        elif args.action == "show":
            if args.limit < 0:
                raise FlowlibError("--limit must be at least 0")
            table = read_state(args.directory, args.step, args.epoch)
            print(format_table(table, args.limit), file=out)
        elif args.action == "export":
            _export(read_state(args.directory, args.step, args.epoch), args.out)
        elif args.action == "check":
            script_args = args.script_args[1:] if args.script_args[:1] == ["--"] else (
                args.script_args)
            try:
                flow = load_flow(args.target, script_args)
            except FlowlibError:
                raise
            except Exception as exc:  # the script's own error, shown as theirs (as by run)
                traceback.print_exception(exc)
                print(f"flowlib: error: {args.target} failed while building its flow",
                      file=sys.stderr)
                return 1
            report = check_resume(flow, args.directory)
            print(format_check(report), file=out)
            return 0 if report.resumable else 1
        else:
            renames = dict(_pair(r) for r in args.rename)
            if not (renames or args.drop or args.add):
                raise FlowlibError("give at least one --rename OLD=NEW, --drop STEP or --add STEP")
            for line in migrate(args.directory, renames, args.drop, args.add):
                print(line, file=out)
    except FlowlibError as exc:
        print(f"flowlib: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        msg = f"--rename {text}: give OLD=NEW"
        raise FlowlibError(msg)
    return old, new


def format_check(report: ResumeCheck) -> str:
    """What ``flowlib checkpoint check`` prints: one line per stateful step, the conversions
    under it, then the verdict."""
    lines = [f"checkpoint {report.directory} against flow {report.flow!r}:"]
    lines += [f"  refused: {p}" for p in report.problems]
    width = max((len(s.id) for s in report.steps), default=0)
    for s in report.steps:
        lines.append(f"  {s.id.ljust(width)}  {s.status}")
        lines += [f"      {c}" for c in s.changes]
        if s.problem:
            lines.append(f"      {s.problem}")
    lines.append("resumable" if report.resumable else "NOT resumable")
    return "\n".join(lines)


def _ls(directory: Path, out: TextIO) -> None:
    info = describe(directory)
    print(f"directory:       {info.directory}", file=out)
    print(f"flow:            {info.flow}", file=out)
    print(f"flowlib version: {info.flowlib_version}", file=out)
    print(f"key groups:      {info.max_key_groups} (max)", file=out)
    print(f"partitions:      {info.partitions}", file=out)
    print(f"committed epoch: {info.committed_epoch}", file=out)
    epochs = ", ".join(map(str, info.stored_epochs)) or "none"
    print(f"stored epochs:   {epochs}", file=out)
    print("executions:", file=out)
    for e in info.executions:
        print(f"  #{e.number}: {e.workers} worker(s), from epoch {e.resume_epoch}",
              file=out)
    rows = [["step", "key type", "state type", "groups", "snapshots", "bytes"]]
    rows += [
        [s.id, s.key_type, s.state_type, str(s.key_groups), str(s.snapshots), str(s.bytes)]
        for s in info.steps
    ]
    if any(s.files for s in info.steps):  # incremental checkpoints: their files too
        rows[0] += ["files", "file bytes"]
        for row, s in zip(rows[1:], info.steps, strict=True):
            row += [str(s.files), str(s.file_bytes)]
    print("stateful steps:", file=out)
    print(_grid(rows, right={3, 4, 5, 6, 7}, indent="  "), file=out)


def _grid(rows: list[list[str]], right: set[int], indent: str = "") -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append(indent + "  ".join(cells).rstrip())
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _json_default(v: object) -> object:
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes):
        return v.hex()
    msg = f"cannot write {type(v).__name__} as JSON"
    raise TypeError(msg)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, list | dict | tuple):
        return json.dumps(v, default=_json_default, ensure_ascii=False)
    return str(v)


def _cell(v: Any) -> str:
    s = _text(v).replace("\n", "\\n")
    return s if len(s) <= _WIDTH else s[: _WIDTH - 1] + "…"


def _sorted(table: pa.Table) -> pa.Table:
    try:
        return table.sort_by("key")
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return table  # a key type Arrow cannot sort (struct): stored order


def format_table(table: pa.Table, limit: int) -> str:
    """Up to ``limit`` rows (sorted by key) as a fixed-width table; struct fields get columns.

    >>> t = pa.table({"key": ["b", "a"], "value": [{"n": 2, "tags": ["x"]}, {"n": 1, "tags": []}]})
    >>> print(format_table(t, 20))
    key  value.n  value.tags
    ---  -------  ----------
    a          1  []
    b          2  ["x"]
    (2 keys)
    """
    total = table.num_rows
    flat = _sorted(table).slice(0, limit)
    while any(pa.types.is_struct(f.type) for f in flat.schema):
        flat = flat.flatten()
    names = flat.column_names
    numeric = {
        i for i, f in enumerate(flat.schema)
        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
        or pa.types.is_decimal(f.type)
    }
    rows = [names] + [[_cell(r[n]) for n in names] for r in flat.to_pylist()]
    footer = f"({total} keys)" if flat.num_rows == total else (
        f"({flat.num_rows} of {total} keys; --limit to see more)")
    return _grid(rows, right=numeric) + "\n" + footer


def _nested(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(t) or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t) or pa.types.is_map(t) or pa.types.is_union(t)
    )


def to_csv_table(table: pa.Table) -> pa.Table:
    """``table`` with structs flattened (``value.a``) and other nested columns as JSON text.

    >>> t = to_csv_table(pa.table({"key": [1], "value": [{"a": [1, 2], "b": 3}]}))
    >>> t.column_names, t.column("value.a").to_pylist(), t.schema.field("value.b").type
    (['key', 'value.a', 'value.b'], ['[1, 2]'], DataType(int64))
    """
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    columns: list[pa.Array[Any] | pa.ChunkedArray[Any]] = []
    for col, field in zip(table.columns, table.schema, strict=True):
        if not _nested(field.type):
            columns.append(col)
            continue
        texts = [None if v is None else json.dumps(v, default=_json_default, ensure_ascii=False)
                 for v in col.to_pylist()]
        columns.append(pa.array(texts, type=pa.string()))
    return pa.Table.from_arrays(columns, names=table.column_names)


def _export(table: pa.Table, out: Path) -> None:
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".arrow", ".csv"):
        msg = f"{out}: give a .parquet, .arrow or .csv file name"
        raise FlowlibError(msg)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        pq.write_table(table, out)
    elif suffix == ".arrow":
        with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        pacsv.write_csv(to_csv_table(table), out)
