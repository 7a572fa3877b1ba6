"""Byte-range splits of the line sources: every line read exactly once, also across resumes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib import DeadLetter, Flow, JsonLinesSource, ListSink, TextLines
from flowlib.connectors.base import SourcePartition
from flowlib.engine import run
from tests.examples.cli_helpers import run_cli


@dataclass(frozen=True)
class Rec:
    i: int


@dataclass(frozen=True)
class Row:
    n: int
    v: int


def text(p: SourcePartition[str]) -> list[str]:
    """Everything ``p`` yields until its end."""
    out: list[str] = []
    while (got := p.read_batch()) is not None:
        out += got[0]
    return out


def read_all(src: TextLines[str]) -> list[str]:
    got: list[str] = []
    for name in src.partitions():
        p = src.open(name, "s", None)
        try:
            got += text(p)
        finally:
            p.close()
    return got


def ident(line: str) -> str:
    return line


SMALL = 40  # batch_bytes: many batches per range, so batches straddle the range ends


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab\u00e9{}", max_size=30), max_size=25),
    splits=st.integers(1, 9),
    final_newline=st.booleans(),
)
def test_every_line_once_in_file_order_per_range(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], splits: int, final_newline: bool
) -> None:
    path = tmp_path_factory.mktemp("split") / "in.txt"
    numbered = [f"{n}:{line}" for n, line in enumerate(lines)]
    path.write_text("\n".join(numbered) + ("\n" if final_newline and numbered else ""))
    src = TextLines(path, parse=ident, splits=splits, batch_bytes=SMALL)
    assert len(src.partitions()) == splits
    # Ranges are disjoint and in file order, so their concatenation is the file.
    assert read_all(src) == numbered


def test_split_names_and_bad_counts(tmp_path: Path) -> None:
    src = JsonLinesSource([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], Rec, splits=2)
    assert src.partitions() == [f"{tmp_path}/a.jsonl#1/2", f"{tmp_path}/a.jsonl#2/2",
                                f"{tmp_path}/b.jsonl#1/2", f"{tmp_path}/b.jsonl#2/2"]
    with pytest.raises(ValueError, match="splits must be at least 1, got 0"):
        JsonLinesSource(tmp_path / "a.jsonl", Rec, splits=0)
    with pytest.raises(ValueError, match="batch_bytes must be at least 1, got 0"):
        JsonLinesSource(tmp_path / "a.jsonl", Rec, batch_bytes=0)
    with pytest.raises(ValueError, match=r"step 'read': no partition 'x' .* splits=2"):
        src.open("x", "read", None)


def test_resume_mid_range_reads_the_rest_once(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    lines = [f"line {n} " + "x" * (n % 17) for n in range(300)]
    path.write_text("\n".join(lines) + "\n")
    src = TextLines(path, parse=ident, splits=3, batch_bytes=SMALL)
    got: list[str] = []
    for name in src.partitions():
        first = src.open(name, "s", None)
        for _ in range(4):  # part of the range, then "crash"
            batch = first.read_batch()
            assert batch is not None
            got += batch[0]
        pos: Any = first.position()
        first.close()
        again = src.open(name, "s", pos)
        got += text(again)
        assert again.size_hint() == (again.size_hint() or (0, 1))[::-1]  # done == total
        again.close()
    assert got == lines


def test_resume_refuses_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("a\nb\nc\nd\n")
    src = TextLines(path, parse=ident, splits=2)
    p = src.open(src.partitions()[1], "s", None)
    pos = p.position()
    p.close()
    path.write_text("a\nb\nc\nd\ne\n")
    with pytest.raises(ValueError, match=r"in\.txt is 10 bytes but was 8 .*\(splits=2\)"):
        src.open(src.partitions()[1], "s", pos)


def test_dead_letters_of_a_later_range_carry_file_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rows = [f'{{"i": {n}}}' for n in range(100)]
    rows[80] = "not json"
    path.write_text("\n".join(rows) + "\n")
    dead = ListSink(DeadLetter)
    out = ListSink(Rec)
    flow = Flow("split_dead", dead_letters=dead)
    flow.source(JsonLinesSource(path, Rec, splits=4), name="recs").sink(out)
    run(flow)
    assert sorted(r.i for r in out.items) == [n for n in range(100) if n != 80]
    assert [d.origin for d in dead.items] == [f"{path}:81"]


def test_two_workers_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(f'{{"i": {n}}}\n' for n in range(5000)))
    out = ListSink(int)
    flow = Flow("split_workers", dead_letters=ListSink(DeadLetter))
    recs = flow.source(JsonLinesSource(path, Rec, splits=2), name="recs")
    recs.map(lambda r: r.i).sink(out)
    report = run(flow, workers_per_process=2)
    assert sorted(out.items) == list(range(5000))
    assert report.step("recs").records_out == 5000


SCRIPT = '''
import sys
from dataclasses import dataclass
from flowlib import Context, Flow, JsonLinesSink, JsonLinesSource, Processor


@dataclass(frozen=True, slots=True)
class Ev:
    k: str
    v: float


@dataclass(frozen=True, slots=True)
class Total:
    k: str
    n: int
    v: float


class Sum(Processor[Ev, Total, str, Total]):
    def process(self, ctx: Context[str, Total, Total], e: Ev) -> None:
        t = ctx.state.get_optional() or Total(e.k, 0, 0.0)
        ctx.state.set(Total(e.k, t.n + 1, t.v + e.v))

    def on_eof(self, ctx: Context[str, Total, Total]) -> None:
        t = ctx.state.get_optional()
        if t is not None:
            ctx.emit(t)


flow = Flow("split_procs", on_error="fail")
evs = flow.source(JsonLinesSource(sys.argv[1], Ev, splits=2), name="evs")
evs.key_by(lambda e: e.k, key_type=str).process(Sum(), name="sum").sink(
    JsonLinesSink(sys.argv[2], Total))
'''


def test_two_processes_split_one_file_and_exchange_typed_events(tmp_path: Path) -> None:
    """``-p 2``: each process reads half the file; the key runs crossing between the processes
    are pickled (through the codec's wire path) and arrive intact."""
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(f'{{"k": "k{n % 37}", "v": {n / 8}}}\n' for n in range(20_000)))
    run_cli("run", script, "-p", "2", "-q", "--", src, out, timeout=120)
    got = {r["k"]: (r["n"], r["v"]) for r in map(json.loads, out.read_text().splitlines())}
    want: dict[str, tuple[int, float]] = {}
    for n in range(20_000):
        c, v = want.get(f"k{n % 37}", (0, 0.0))
        want[f"k{n % 37}"] = (c + 1, v + n / 8)
    assert got.keys() == want.keys()
    for k, (c, v) in want.items():
        assert got[k][0] == c and math.isclose(got[k][1], v, rel_tol=1e-12), k


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.integers(0, 99), st.none()), max_size=30),
    splits=st.integers(1, 6),
    batch_bytes=st.integers(1, 90),
    final_newline=st.booleans(),
)
def test_json_ranges_read_in_blocks_cover_the_file_once(
    tmp_path_factory: pytest.TempPathFactory,
    values: list[int | None],
    splits: int,
    batch_bytes: int,
    final_newline: bool,
) -> None:
    """The JSON source reads whole-line blocks for its bulk decoder: any block size and range
    count gives every record once, in file order, bad lines dead-lettered with their number."""
    # None stands for a line that does not decode (then the block is redone line by line)
    lines = [f'{{"n":{i},"v":{v}}}' if v is not None else f"bad {i}" for i, v in
             enumerate(values)]
    path = tmp_path_factory.mktemp("json") / "in.jsonl"
    path.write_text("\n".join(lines) + ("\n" if final_newline and lines else ""))
    src = JsonLinesSource(path, Row, splits=splits, batch_bytes=batch_bytes)
    got: list[Row] = []
    dead: list[DeadLetter] = []
    for name in src.partitions():
        part = src.open(name, "s", None)
        while (batch := part.read_batch()) is not None:
            got += batch[0]
            dead += batch[1]
        part.close()
    assert [r.n for r in got] == [i for i, v in enumerate(values) if v is not None]
    assert [r.v for r in got] == [v for v in values if v is not None]
    bad = [i for i, v in enumerate(values) if v is None]
    assert sorted(str(d.origin) for d in dead) == sorted(f"{path}:{i + 1}" for i in bad)
