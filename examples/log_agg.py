"""Log aggregation on real logs (LogHub samples), in event-time windows.

Each line is parsed into a typed :class:`LogEvent` (timestamp, level, message, and the id of the
LogHub template the message matches). Events are counted per one-minute event-time window and
(level, template), and per one-minute window overall; both counts are written as typed JSON
lines as the watermark passes each window. Events that arrive behind the watermark by more than
``--max-delay`` go to ``late.jsonl``; lines that do not parse or match no template go to
``dead_letters.jsonl``. So every line ends up counted, late, or dead-lettered.

    flowlib run examples/log_agg.py [LOG_FILE] [--format apache|zookeeper|hpc]
        [--templates CSV] [--max-delay SECONDS] [--out DIR] [--state memory|disk]

``--format hpc`` counts per (component, template): HPC logs have no level. ``--state disk``
keeps the window state of both counting steps in RocksDB (``state_backends.DiskBackend``)
instead of memory; the output is the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flowlib import Flow, JsonLinesSink, TextLines
from flowlib.time import Late
from operators.aggregations import Count
from operators.loghub import parse_apache, parse_hpc, parse_zookeeper
from operators.templates import TemplateMatcher
from operators.windows import TumblingWindows, WindowResult
from state_backends import DiskBackend, MemoryBackend

DATA = Path(__file__).resolve().parent / "data" / "loghub"
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class LogEvent:
    ts: datetime
    level: str
    template_id: str
    message: str


@dataclass(frozen=True, slots=True)
class TemplateCount:
    minute: datetime
    level: str
    template_id: str
    template: str
    count: int


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: datetime
    count: int


@dataclass(frozen=True, slots=True)
class LateEvent:
    ts: datetime
    watermark: datetime
    level: str
    template_id: str
    message: str


def _apache(line: str) -> tuple[datetime, str, str]:
    r = parse_apache(line)
    return r.ts, r.level, r.message


def _zookeeper(line: str) -> tuple[datetime, str, str]:
    r = parse_zookeeper(line)
    return r.ts, r.level, r.message


def _hpc(line: str) -> tuple[datetime, str, str]:
    r = parse_hpc(line)
    return r.ts, r.component, r.message


FORMATS: dict[str, tuple[Callable[[str], tuple[datetime, str, str]], str]] = {
    "apache": (_apache, "Apache"),
    "zookeeper": (_zookeeper, "Zookeeper"),
    "hpc": (_hpc, "HPC"),
}


def arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="log_agg")
    p.add_argument("log", nargs="?", type=Path)
    p.add_argument("--format", choices=sorted(FORMATS), default="apache")
    p.add_argument("--templates", type=Path)
    p.add_argument("--max-delay", type=float, default=5.0, metavar="SECONDS",
                   help="allowed out-of-orderness of event time (default 5)")
    p.add_argument("--out", type=Path, default=Path("out/log_agg"))
    p.add_argument("--state", choices=("memory", "disk"), default="memory",
                   help="where the counting steps keep their state (default memory)")
    args = p.parse_args(argv)
    system = FORMATS[args.format][1]
    args.log = args.log or DATA / system / f"{system}_2k.log"
    args.templates = args.templates or DATA / system / f"{system}_2k.log_templates.csv"
    return args


class Parser:
    """Raw line -> LogEvent; raises (so the line becomes a dead letter) when it cannot."""

    def __init__(self, fmt: str, matcher: TemplateMatcher) -> None:
        self.parse = FORMATS[fmt][0]
        self.matcher = matcher

    def __call__(self, line: str) -> LogEvent:
        ts, level, message = self.parse(line)
        template_id = self.matcher.match(message)
        if template_id is None:
            msg = f"no template matches message {message[:80]!r}"
            raise ValueError(msg)
        return LogEvent(ts, level, template_id, message)


def build(args: argparse.Namespace) -> Flow:
    matcher = TemplateMatcher.from_csv(args.templates)
    flow = Flow("log_agg")
    events = flow.source(TextLines(args.log, parse=Parser(args.format, matcher)), name="parse")
    timed = events.with_event_time("ts", max_out_of_orderness=timedelta(seconds=args.max_delay))

    def per_template(w: WindowResult[tuple[str, str], int]) -> TemplateCount:
        level, tid = w.key
        return TemplateCount(w.start, level, tid, matcher.template_of(tid), w.value)

    def per_minute(w: WindowResult[str, int]) -> MinuteCount:
        return MinuteCount(w.start, w.value)

    def late(e: Late[tuple[str, str], LogEvent]) -> LateEvent:
        ev = e.event
        return LateEvent(ev.ts, e.watermark, ev.level, ev.template_id, ev.message)

    state = DiskBackend if args.state == "disk" else MemoryBackend
    by_template = timed.key_by(lambda e: (e.level, e.template_id), key_type=tuple[str, str])
    counts = by_template.process(
        TumblingWindows(MINUTE, Count()), name="count_per_template", state=state
    )
    counts.map(per_template).sink(
        JsonLinesSink(args.out / "counts_by_template.jsonl", TemplateCount)
    )
    counts.late.map(late).sink(JsonLinesSink(args.out / "late.jsonl", LateEvent))

    # One key: the total per minute lives in a single key group (2 steps, not a global reduce).
    by_minute = timed.key_by(lambda e: "all", key_type=str).process(
        TumblingWindows(MINUTE, Count()), name="count_per_minute", state=state
    )
    by_minute.map(per_minute).sink(JsonLinesSink(args.out / "counts_by_minute.jsonl", MinuteCount))
    by_minute.late.map(lambda e: e.event).sink(
        JsonLinesSink(args.out / "late_per_minute.jsonl", LogEvent)
    )
    return flow


flow = build(arguments(sys.argv[1:]))
