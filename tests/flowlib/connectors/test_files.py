"""File connectors: typed decoding with dead letters, line numbers, resume positions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flowlib import DeadLetter, Flow, JsonLinesSink, JsonLinesSource, ListSink, TextLines
from flowlib.engine import run


@dataclass(frozen=True)
class Reading:
    sensor: str
    value: float
    at: datetime


def test_bad_json_lines_become_dead_letters_with_line_numbers(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"sensor": "a", "value": 1.5, "at": "2024-01-01T00:00:00Z"}\r\n'
        b'{"sensor": "b", "value": "high", "at": "2024-01-01T00:00:00Z"}\r\n'
        b"\r\n"
        b'{"sensor": "c", "value": 2, "at": 1704067200}\n'
        b"not json\n"
        b'{"sensor": "d", "value": 3.0}'  # no final newline, missing field
    )
    dead = ListSink(DeadLetter)
    out = ListSink(Reading)
    flow = Flow("files", dead_letters=dead)
    flow.source(JsonLinesSource(src, Reading), name="readings").sink(out)
    report = run(flow)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    assert out.items == [Reading("a", 1.5, t), Reading("c", 2.0, t)]
    got = {d.origin: (d.error_type, d.error) for d in dead.items}
    assert {origin: kind for origin, (kind, _) in got.items()} == {
        f"{src}:2": "DecodeError", f"{src}:5": "DecodeError", f"{src}:6": "DecodeError",
    }
    assert got[f"{src}:2"][1].startswith("at $.value: expected float, found str")
    assert "at $.at: expected datetime, found missing field" in got[f"{src}:6"][1]
    assert [d.record for d in dead.items if d.origin == f"{src}:5"] == ["not json"]
    c = report.step("readings")
    assert (c.records_in, c.records_out, c.dead_letters) == (5, 2, 3)


def test_text_lines_and_json_sink_round_trip(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("3\n4\nfive\n6")

    def parse(line: str) -> int:
        return int(line)

    flow = Flow("text", dead_letters=JsonLinesSink(tmp_path / "dead.jsonl", DeadLetter))
    nums = flow.source(TextLines(log, parse=parse), name="nums")
    nums.map(lambda x: x * 2).sink(JsonLinesSink(tmp_path / "out.jsonl", int))
    run(flow)
    assert (tmp_path / "out.jsonl").read_text() == "6\n8\n12\n"
    dead = (tmp_path / "dead.jsonl").read_text()
    assert '"record":"five"' in dead and f'"origin":"{log}:3"' in dead
