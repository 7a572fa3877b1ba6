"""ZooKeeper and HPC parsers on LogHub's samples (the out-of-order ones), against its labels."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from operators.loghub import parse_hpc, parse_zookeeper
from operators.templates import TemplateMatcher

LOGHUB = Path(__file__).resolve().parents[2] / "examples" / "data" / "loghub"


def rows_and_lines(system: str) -> tuple[list[dict[str, str]], list[str]]:
    base = LOGHUB / system / f"{system}_2k"
    with open(f"{base}.log_structured.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    lines = [x for x in Path(f"{base}.log").read_text().splitlines() if x.strip()]
    return rows, lines


@pytest.mark.parametrize(
    ("system", "parse", "level_column"),
    [("Zookeeper", parse_zookeeper, "Level"), ("HPC", parse_hpc, "Component")],
)
def test_every_line_parses_and_matches_loghubs_template(
    system: str, parse: Callable[[str], object], level_column: str
) -> None:
    rows, lines = rows_and_lines(system)
    matcher = TemplateMatcher.from_csv(LOGHUB / system / f"{system}_2k.log_templates.csv")
    assert len(rows) == len(lines) == 2000
    for row, line in zip(rows, lines, strict=True):
        rec = parse(line)
        assert getattr(rec, "message") == row["Content"]  # noqa: B009
        level = getattr(rec, "level" if system == "Zookeeper" else "component")
        assert level == row[level_column]
        assert matcher.match(row["Content"]) == row["EventId"]


def test_hpc_time_is_the_epoch_field() -> None:
    rows, lines = rows_and_lines("HPC")
    for row, line in zip(rows[:50], lines[:50], strict=True):
        assert int(parse_hpc(line).ts.timestamp()) == int(row["Time"])


@pytest.mark.parametrize(
    ("parse", "line", "message"),
    [
        (parse_zookeeper, "2015-07-29 - INFO nothing", "not a ZooKeeper log4j line"),
        (parse_zookeeper, "2015-13-29 17:41:44,747 - INFO  [t@1] - m", "bad timestamp"),
        (parse_hpc, "134681 node-246 unix.hw", r"not an HPC log line \(7 fields\)"),
    ],
)
def test_malformed_lines_say_what_is_wrong(
    parse: Callable[[str], object], line: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse(line)
