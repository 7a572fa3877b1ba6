"""Log aggregation on real Apache error logs (LogHub sample).

Each line is parsed into a typed :class:`LogEvent` (timestamp, level, message, and the id of the
LogHub template the message matches); events are counted per (level, template) and per minute,
and both counts are written as typed JSON lines. Lines that do not parse, or match no template,
go to ``dead_letters.jsonl`` beside the outputs.

    flowlib run examples/log_agg.py [LOG_FILE] [--templates CSV] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flowlib import Flow, JsonLinesSink, TextLines
from operators.aggregate import Count, Keyed
from operators.loghub import parse_apache
from operators.templates import TemplateMatcher

DATA = Path(__file__).resolve().parent / "data" / "loghub" / "Apache"


@dataclass(frozen=True, slots=True)
class LogEvent:
    ts: datetime
    level: str
    template_id: str
    message: str


@dataclass(frozen=True, slots=True)
class TemplateCount:
    level: str
    template_id: str
    template: str
    count: int


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: datetime
    count: int


def arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="log_agg")
    p.add_argument("log", nargs="?", type=Path, default=DATA / "Apache_2k.log")
    p.add_argument("--templates", type=Path, default=DATA / "Apache_2k.log_templates.csv")
    p.add_argument("--out", type=Path, default=Path("out/log_agg"))
    return p.parse_args(argv)


class Parser:
    """Raw line -> LogEvent; raises (so the line becomes a dead letter) when it cannot."""

    def __init__(self, matcher: TemplateMatcher) -> None:
        self.matcher = matcher

    def __call__(self, line: str) -> LogEvent:
        rec = parse_apache(line)
        template_id = self.matcher.match(rec.message)
        if template_id is None:
            msg = f"no template matches message {rec.message[:80]!r}"
            raise ValueError(msg)
        return LogEvent(rec.ts, rec.level, template_id, rec.message)


def build(args: argparse.Namespace) -> Flow:
    matcher = TemplateMatcher.from_csv(args.templates)
    flow = Flow("log_agg")
    events = flow.source(TextLines(args.log, parse=Parser(matcher)), name="parse")

    def per_template(c: Keyed[tuple[str, str], int]) -> TemplateCount:
        level, tid = c.key
        return TemplateCount(level, tid, matcher.template_of(tid), c.value)

    def per_minute(c: Keyed[datetime, int]) -> MinuteCount:
        return MinuteCount(c.key, c.value)

    by_template = (
        events.key_by(lambda e: (e.level, e.template_id), key_type=tuple[str, str])
        .process(Count(), name="count_per_template")
        .map(per_template)
    )
    by_template.sink(JsonLinesSink(args.out / "counts_by_template.jsonl", TemplateCount))
    by_minute = (
        events.key_by(lambda e: e.ts.replace(second=0, microsecond=0), key_type=datetime)
        .process(Count(), name="count_per_minute")
        .map(per_minute)
    )
    by_minute.sink(JsonLinesSink(args.out / "counts_by_minute.jsonl", MinuteCount))
    return flow


flow = build(arguments(sys.argv[1:]))
