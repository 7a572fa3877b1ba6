"""The operators of examples/log_agg_kafka.py under the harness, on the real Apache sample."""

from __future__ import annotations

import sys
from collections import Counter
from unittest import mock

import pytest

from flowlib.testing import ProcessorHarness
from flowlib.testing.properties import assert_engine_agrees
from operators.aggregate import Count, Keyed
from operators.templates import TemplateMatcher
from tests.examples.cli_helpers import LOGHUB, structured_rows

# The script reads its arguments when imported; give it a broker address it never contacts.
with mock.patch.object(sys, "argv", ["log_agg_kafka.py", "--brokers", "127.0.0.1:9"]):
    from examples.log_agg_kafka import LogEvent, Parser

APACHE = LOGHUB / "Apache"
LINES = (APACHE / "Apache_2k.log").read_text().splitlines()

Counts = ProcessorHarness[LogEvent, Keyed[tuple[str, str], int], tuple[str, str], int]


def counts() -> Counts:
    return ProcessorHarness(
        Count[LogEvent, tuple[str, str]](), key=lambda e: (e.level, e.template_id),
        key_type=tuple[str, str], step="count_per_template",
    )


def parsed() -> list[LogEvent]:
    parse = Parser(TemplateMatcher.from_csv(APACHE / "Apache_2k.log_templates.csv"))
    return [parse(line) for line in LINES]


def test_parser_labels_every_line_as_loghub_does() -> None:
    events = parsed()
    assert [(e.level, e.template_id) for e in events] == [
        (r["Level"], r["EventId"]) for r in structured_rows("Apache")
    ]


def test_counts_per_level_and_template_match_loghub() -> None:
    h = counts()
    h.push_many(parsed())
    h.end_of_input()
    got = {k.key: k.value for k in h.outputs}
    assert got == dict(Counter((r["Level"], r["EventId"]) for r in structured_rows("Apache")))


def test_a_line_no_template_matches_raises_so_it_becomes_a_dead_letter() -> None:
    parse = Parser(TemplateMatcher([("E1", "only this <*>")]))
    with pytest.raises(ValueError, match="no template matches message"):
        parse(LINES[0])


def test_harness_and_engine_agree_on_the_counts() -> None:
    assert_engine_agrees(counts, parsed()[:300], workers=2)
