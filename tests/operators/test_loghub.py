"""Raw-line parsers checked field by field against LogHub's structured CSVs."""

from __future__ import annotations

import csv
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from operators.loghub import ApacheLine, OpenSSHLine, parse_apache, parse_openssh
from operators.templates import TemplateMatcher

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "loghub"


def raw_lines(system: str) -> list[str]:
    # Split on "\n" only, so each line keeps its "\r" (the files are CRLF and
    # the last line has no terminator), exactly as a byte-level source sees it.
    text = (DATA / system / f"{system}_2k.log").read_bytes().decode("ascii")
    return text.split("\n")


def structured_rows(system: str) -> list[dict[str, str]]:
    with open(DATA / system / f"{system}_2k.log_structured.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def matcher(system: str) -> TemplateMatcher:
    return TemplateMatcher.from_csv(DATA / system / f"{system}_2k.log_templates.csv")


def test_apache_sample_matches_loghub_fields_and_event_ids() -> None:
    lines, rows, m = raw_lines("Apache"), structured_rows("Apache"), matcher("Apache")
    assert len(lines) == len(rows) == 2000
    for line, row in zip(lines, rows, strict=True):
        parsed = parse_apache(line)
        assert parsed.ts.tzinfo is UTC
        assert parsed.ts.strftime("%a %b %d %H:%M:%S %Y") == row["Time"], row["LineId"]
        assert (parsed.level, parsed.message) == (row["Level"], row["Content"]), row["LineId"]
        assert m.match(parsed.message) == row["EventId"], row["LineId"]


def test_openssh_sample_matches_loghub_fields_and_event_ids() -> None:
    lines, rows, m = raw_lines("OpenSSH"), structured_rows("OpenSSH"), matcher("OpenSSH")
    assert len(lines) == len(rows) == 2000
    for line, row in zip(lines, rows, strict=True):
        parsed = parse_openssh(line)
        assert parsed.ts.tzinfo is UTC
        assert parsed.ts.year == 2024
        assert parsed.ts.strftime("%b %d %H:%M:%S").split() == [
            row["Date"],
            row["Day"].zfill(2),
            row["Time"],
        ], row["LineId"]
        assert (parsed.host, parsed.process) == (row["Component"], "sshd"), row["LineId"]
        assert (parsed.pid, parsed.message) == (int(row["Pid"]), row["Content"]), row["LineId"]
        assert m.match(parsed.message) == row["EventId"], row["LineId"]


def test_apache_line_fields() -> None:
    line = "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/w.properties\r"
    assert parse_apache(line) == ApacheLine(
        datetime(2005, 12, 4, 4, 47, 44, tzinfo=UTC),
        "notice",
        "workerEnv.init() ok /etc/httpd/conf/w.properties",
    )


def test_apache_line_without_message() -> None:
    assert parse_apache("[Mon Dec 05 10:00:00 2005] [error]\r\n").message == ""


def test_openssh_line_fields_and_year() -> None:
    line = "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186 \r"
    assert parse_openssh(line, year=2017) == OpenSSHLine(
        datetime(2017, 12, 10, 6, 55, 46, tzinfo=UTC),
        "LabSZ",
        "sshd",
        24200,
        "Invalid user webmaster from 173.234.31.186",
    )


def test_openssh_space_padded_day_and_leap_day() -> None:
    assert parse_openssh("Jan  5 00:00:01 h cron[7]: x").ts == datetime(
        2024, 1, 5, 0, 0, 1, tzinfo=UTC
    )
    assert parse_openssh("Feb 29 12:00:00 h sshd[1]: x").ts.day == 29
    with pytest.raises(ValueError, match="day is out of range"):
        parse_openssh("Feb 29 12:00:00 h sshd[1]: x", year=2023)


def test_records_are_frozen() -> None:
    parsed = parse_apache("[Sun Dec 04 04:47:44 2005] [notice] x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.level = "error"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("", 'missing "\\[timestamp\\]"'),
        ("\r", 'missing "\\[timestamp\\]"'),
        ("garbage in, garbage out", 'missing "\\[timestamp\\]"'),
        ("Sun Dec 04 04:47:44 2005 [notice] x", 'missing "\\[timestamp\\]"'),
        ("[Sun Dek 04 04:47:44 2005] [notice] x", "bad month 'Dek'"),
        ("[Sun dec 04 04:47:44 2005] [notice] x", "bad month 'dec'"),
        ("[Sno Dec 04 04:47:44 2005] [notice] x", "bad weekday 'Sno'"),
        ("[Sun Dec 4 04:47:44 2005] [notice] x", "bad timestamp 'Sun Dec 4 04:47:44 2005'"),
        ("[Sun Feb 30 04:47:44 2005] [notice] x", "bad timestamp .*day is out of range"),
        ("[Sun Dec 04 24:00:00 2005] [notice] x", "bad timestamp .*hour must be in"),
        ("[Sun Dec 04 04:47:44 2005] notice x", 'missing "\\[level\\]"'),
        ("[Sun Dec 04 04:47:44 2005] [notice x", 'missing "\\[level\\]"'),
        ("[Sun Dec 04 04:47:44 2005]", 'missing "\\[level\\]"'),
        ("[Sun Dec 04 04:47:44 2005] [] x", "bad level ''"),
        ("[Sun Dec 04 04:47:44 2005] [no tice] x", "bad level 'no tice'"),
        ("[Sun Dec 04 04:47:44 2005] [notice]x", 'no space after "\\[notice\\]"'),
    ],
)
def test_malformed_apache_lines(line: str, error: str) -> None:
    with pytest.raises(ValueError, match=f"^not an Apache error-log line: {error}"):
        parse_apache(line)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("", 'expected "Mon DD HH:MM:SS host process\\[pid\\]: message"'),
        ("garbage", 'expected "Mon DD HH:MM:SS host process\\[pid\\]: message"'),
        ("Dex 10 06:55:46 LabSZ sshd[1]: x", "bad month 'Dex'"),
        ("10 Dec 06:55:46 LabSZ sshd[1]: x", "bad month '10'"),
        ("Dec 10 6:55:46 LabSZ sshd[1]: x", "bad timestamp 'Dec 10 6:55:46'"),
        ("Dec 32 06:55:46 LabSZ sshd[1]: x", "bad timestamp .*day is out of range"),
        ("Dec 10 06:60:46 LabSZ sshd[1]: x", "bad timestamp .*minute must be in"),
        ("Dec 10 06:55:46", 'missing "host process\\[pid\\]:"'),
        ("Dec 10 06:55:46 LabSZ", 'missing "host process\\[pid\\]:"'),
        ("Dec 10 06:55:46 LabSZ sshd: x", "missing \"process\\[pid\\]:\" tag, got 'sshd:'"),
        ("Dec 10 06:55:46 LabSZ sshd[x]: x", 'missing "process\\[pid\\]:" tag'),
        ("Dec 10 06:55:46 LabSZ [1]: x", 'missing "process\\[pid\\]:" tag'),
        ("Dec 10 06:55:46\tLabSZ sshd[1]: x", "expected single spaces"),
    ],
)
def test_malformed_openssh_lines(line: str, error: str) -> None:
    with pytest.raises(ValueError, match=f"^not an OpenSSH syslog line: {error}"):
        parse_openssh(line)


def test_openssh_rejects_year_outside_datetime_range() -> None:
    with pytest.raises(ValueError, match="year 0 is outside"):
        parse_openssh("Dec 10 06:55:46 LabSZ sshd[1]: x", year=0)


def test_long_garbage_is_reported_with_a_short_excerpt() -> None:
    with pytest.raises(ValueError) as info:
        parse_apache("x" * 10_000)
    assert len(str(info.value)) < 200
