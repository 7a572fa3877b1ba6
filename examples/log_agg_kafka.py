"""Log aggregation over Kafka: raw Apache error-log lines in, typed counts out.

Reads raw lines (LogHub Apache format) from the ``--input`` topic up to its end, parses each one
in the source (timestamp, level, and the LogHub template its message matches), counts events per
(level, template) and writes one :class:`TemplateCount` per pair, as JSON keyed
``level/template_id``, to the ``--output`` topic, in exactly-once transactions. A line that does
not parse, or matches no template, goes to the ``--dead-letters`` topic with its original bytes
and, in headers, the error and the topic/partition/offset it came from.

    flowlib dev-broker                                      # another terminal: prints ADDRESS
    python examples/log_agg_kafka.py --brokers ADDRESS --load   # write the sample to the topic
    flowlib run examples/log_agg_kafka.py -- --brokers ADDRESS

Run as a plain script, it only writes the lines of ``--load [FILE]`` (default: the bundled LogHub
sample) to the input topic: the flow script itself must not write anything, since every process
of a multi-process run loads it. See docs/kafka.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flowlib import Flow
from flowlib.connectors.kafka import KafkaDeadLetterSink, KafkaSink, KafkaSource
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


def arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="log_agg_kafka")
    p.add_argument("--brokers", required=True, help="Kafka bootstrap servers, host:port,...")
    p.add_argument("--input", default="apache-logs", help="topic of raw log lines")
    p.add_argument("--output", default="log-counts", help="topic of TemplateCount records")
    p.add_argument("--dead-letters", default="log-dead-letters", help="topic of dead letters")
    p.add_argument("--templates", type=Path, default=DATA / "Apache_2k.log_templates.csv")
    p.add_argument("--load", nargs="?", type=Path, const=DATA / "Apache_2k.log", metavar="FILE",
                   help="(run as a script) write FILE's lines to the input topic, then exit")
    return p.parse_args(argv)


class Parser:
    """Raw line -> LogEvent; raises (so the line becomes a dead letter) when it cannot."""

    def __init__(self, matcher: TemplateMatcher) -> None:
        self.matcher = matcher

    def __call__(self, line: str) -> LogEvent:
        rec = parse_apache(line.rstrip("\r\n"))
        template_id = self.matcher.match(rec.message)
        if template_id is None:
            msg = f"no template matches message {rec.message[:80]!r}"
            raise ValueError(msg)
        return LogEvent(rec.ts, rec.level, template_id, rec.message)


def load(brokers: str, topic: str, path: Path) -> int:
    """Write the lines of ``path`` to ``topic``, one message each; returns how many."""
    from confluent_kafka import Producer

    # Compressed: the dev broker keeps only the last few MB of each partition.
    producer = Producer({"bootstrap.servers": brokers, "compression.type": "lz4"})
    lines = path.read_bytes().splitlines()
    for line in lines:
        while True:
            try:
                producer.produce(topic, line)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60):
        msg = f"could not write all of {path} to topic {topic!r} at {brokers}"
        raise RuntimeError(msg)
    return len(lines)


def build(args: argparse.Namespace) -> Flow:
    matcher = TemplateMatcher.from_csv(args.templates)
    dead_letters = KafkaDeadLetterSink(args.dead_letters, brokers=args.brokers,
                                       exactly_once=True)
    flow = Flow("log_agg_kafka", dead_letters=dead_letters)
    source = KafkaSource(args.input, parse=Parser(matcher), brokers=args.brokers,
                         stop_at_end=True)
    events = flow.source(source, name="parse")

    def per_template(c: Keyed[tuple[str, str], int]) -> TemplateCount:
        level, tid = c.key
        return TemplateCount(level, tid, matcher.template_of(tid), c.value)

    counts = (
        events.key_by(lambda e: (e.level, e.template_id), key_type=tuple[str, str])
        .process(Count(), name="count_per_template")
        .map(per_template)
    )
    counts.sink(
        KafkaSink(args.output, TemplateCount, brokers=args.brokers,
                  key=lambda c: f"{c.level}/{c.template_id}", exactly_once=True),
        name="counts",
    )
    return flow


def main(argv: list[str]) -> int:
    """``python examples/log_agg_kafka.py --brokers ADDRESS --load [FILE]``."""
    args = arguments(argv)
    if args.load is None:
        print("run the flow with: flowlib run examples/log_agg_kafka.py -- --brokers ADDRESS; "
              "as a script, give --load [FILE]", file=sys.stderr)
        return 2
    n = load(args.brokers, args.input, args.load)
    print(f"wrote {n} lines of {args.load} to topic {args.input!r} at {args.brokers}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
else:
    _args = arguments(sys.argv[1:])
    if _args.load is not None:
        sys.exit("--load writes the input: run it as a script, python examples/log_agg_kafka.py")
    flow = build(_args)
