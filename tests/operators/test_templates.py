"""TemplateMatcher against LogHub's own labels, plus unit and differential tests."""

from __future__ import annotations

import csv
import random
import re
import time
from functools import cache
from pathlib import Path

import pytest

from operators.templates import TemplateMatcher

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "loghub"
SYSTEMS = ["Apache", "OpenSSH"]


def structured_rows(system: str) -> list[dict[str, str]]:
    with open(DATA / system / f"{system}_2k.log_structured.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def matcher(system: str) -> TemplateMatcher:
    return TemplateMatcher.from_csv(DATA / system / f"{system}_2k.log_templates.csv")


@pytest.mark.parametrize("system", SYSTEMS)
def test_reproduces_loghub_event_ids_for_every_row(system: str) -> None:
    rows = structured_rows(system)
    m = matcher(system)
    assert len(rows) == 2000
    wrong = [
        (row["LineId"], row["EventId"], m.match(row["Content"]))
        for row in rows
        if m.match(row["Content"]) != row["EventId"]
    ]
    assert wrong == []


@pytest.mark.parametrize("system", SYSTEMS)
def test_template_of_returns_the_csv_template(system: str) -> None:
    m = matcher(system)
    for row in structured_rows(system):
        assert m.template_of(row["EventId"]) == row["EventTemplate"]


def test_from_csv_reads_all_templates_in_order() -> None:
    m = matcher("OpenSSH")
    assert len(m) == 27
    assert m.event_ids[:3] == ("E1", "E2", "E3")
    # CRLF files: no "\r" may leak into the last column.
    assert m.template_of("E1") == "Accepted password for <*> from <*> port <*> ssh2"


def test_from_csv_rejects_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Id,Template\nE1,x <*>\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['EventId', 'EventTemplate'\]"):
        TemplateMatcher.from_csv(path)


def test_wildcard_matches_empty_text() -> None:
    m = TemplateMatcher([("E1", "state <*>x"), ("E2", "ok<*>")])
    assert m.match("state x") == "E1"
    assert m.match("ok") == "E2"


def test_match_must_cover_the_whole_message() -> None:
    m = TemplateMatcher([("E1", "session closed for user <*>"), ("E2", "Bye <*> [preauth]")])
    assert m.match("pam: session closed for user root") is None
    assert m.match("Bye Bye [preauth] again") is None
    assert m.match("Bye Bye [preauth]") == "E2"


def test_no_match_returns_none() -> None:
    m = TemplateMatcher([("E1", "Invalid user <*> from <*>")])
    assert m.match("Accepted password for root") is None
    assert m.match("") is None
    assert TemplateMatcher([]).match("anything") is None


def test_regex_metacharacters_are_literal() -> None:
    m = TemplateMatcher([("E1", "jk2_init() Found child <*> in scoreboard slot <*>")])
    assert m.match("jk2_init() Found child 6725 in scoreboard slot 10") == "E1"
    assert m.match("jk2_init Found child 6725 in scoreboard slot 10") is None
    dots = TemplateMatcher([("E1", "a.b")])
    assert dots.match("a.b") == "E1"
    assert dots.match("axb") is None


def test_overlap_prefers_more_literal_characters_whatever_the_order() -> None:
    general = ("E9", "Failed password for <*> from <*> port <*> ssh2")
    specific = ("E10", "Failed password for invalid user <*> from <*> port <*> ssh2")
    line = "Failed password for invalid user admin from 1.2.3.4 port 22 ssh2"
    assert TemplateMatcher([general, specific]).match(line) == "E10"
    assert TemplateMatcher([specific, general]).match(line) == "E10"
    assert TemplateMatcher([general, specific]).match(line.replace("invalid user ", "")) == "E9"


def test_overlap_ties_break_on_fewer_wildcards_then_input_order() -> None:
    # Same literal count (4): "a<*>b<*>c<*>d" has more wildcard runs.
    m = TemplateMatcher([("many", "a<*>b<*>c<*>d"), ("few", "a<*>bc<*>d")])
    assert m.match("a-bc-d") == "few"
    tie = [("first", "ab<*>"), ("second", "<*>ab")]
    assert TemplateMatcher(tie).match("abab") == "first"
    assert TemplateMatcher(tie[::-1]).match("abab") == "second"


def test_adjacent_wildcards_count_as_one_run() -> None:
    m = TemplateMatcher([("double", "v<*><*>.<*>"), ("single", "v<*>.<*>")])
    assert m.match("v2.6") == "double"  # equal specificity: input order decides


def test_surrounding_whitespace_is_ignored() -> None:
    # Raw sshd lines end with a space that LogHub's Content column drops.
    m = TemplateMatcher(
        [
            ("E16", "PAM <*> more authentication failures; rhost=<*>"),
            ("E17", "PAM <*> more authentication failures; rhost=<*>  user=root"),
        ]
    )
    assert m.match("PAM 5 more authentication failures; rhost=1.2.3.4  user=root ") == "E17"
    assert m.match("  PAM 5 more authentication failures; rhost=1.2.3.4") == "E16"


def test_templates_starting_with_a_wildcard_compete_with_indexed_ones() -> None:
    m = TemplateMatcher([("short", "Received <*>"), ("long", "<*> block blk_<*> of size <*>")])
    assert m.match("Received block blk_1 of size 5") == "long"
    assert m.match("Receiving block blk_1 of size 5") == "long"
    assert m.match("Received nothing") == "short"


def test_duplicate_event_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate event id 'E1'"):
        TemplateMatcher([("E1", "a"), ("E1", "b")])


def test_template_of_unknown_id_raises_key_error() -> None:
    with pytest.raises(KeyError, match="unknown event id 'E99'"):
        TemplateMatcher([("E1", "a")]).template_of("E99")


def test_near_miss_lines_do_not_backtrack_exponentially() -> None:
    # Plain lazy wildcards take minutes on this line; it must stay instant.
    m = TemplateMatcher([("E18", "Fan speeds ( <*> <*> <*> <*> <*> <*> )")])
    line = "Fan speeds ( " + "1 " * 2000 + "x"
    start = time.perf_counter()
    assert m.match(line) is None
    assert time.perf_counter() - start < 1.0


def glob_matches(template: str, message: str) -> bool:
    """Reference matcher: character-by-character recursion, no regex."""

    @cache
    def step(t: int, m: int) -> bool:
        if t == len(template):
            return m == len(message)
        if template.startswith("<*>", t):
            return any(step(t + 3, k) for k in range(m, len(message) + 1))
        return m < len(message) and template[t] == message[m] and step(t + 1, m + 1)

    return step(0, 0)


def wildcard_runs(template: str) -> int:
    return len(re.findall(r"(?:<\*>)+", template))


def test_agrees_with_a_brute_force_reference() -> None:
    rnd = random.Random(20240611)
    for _ in range(3000):
        templates = [
            "".join(rnd.choice(["a", "b", " ", "<*>"]) for _ in range(rnd.randint(0, 6))).strip()
            for _ in range(4)
        ]
        message = "".join(rnd.choice("ab ") for _ in range(rnd.randint(0, 8))).strip()
        candidates = [
            (-len(t.replace("<*>", "")), wildcard_runs(t), i)
            for i, t in enumerate(templates)
            if glob_matches(t, message)
        ]
        expected = str(min(candidates)[2]) if candidates else None
        m = TemplateMatcher([(str(i), t) for i, t in enumerate(templates)])
        assert m.match(message) == expected, (templates, message)
