#!/usr/bin/env python3
"""Kafka topic to Kafka topic: flowlib's Kafka connectors against bytewax's own.

    python bench/kafka_bench.py [--events N] [--rounds R]

Starts a mock Kafka broker (librdkafka's, as ``flowlib dev-broker``), writes N small JSON events
to a 4-partition topic once, then per round runs each peer once, in turn, as a fresh process. The
job is the same for all: read every event, decode its JSON, compute two fields, encode the result
as JSON and write it to a new topic, then stop at the end of the input. The time is measured in
the child, from building the dataflow to the end of the run, all output acknowledged by the broker
(imports and interpreter start excluded). Every run's output is counted back from the broker.

Peers:

- ``flowlib``: ``KafkaSource(topic, Event) -> map -> KafkaSink(topic, Scored)`` (at-least-once).
- ``flowlib-eos``: the same with ``exactly_once=True`` (one transaction per checkpoint).
- ``bytewax``: ``bytewax.connectors.kafka.KafkaSource/KafkaSink`` with their defaults, the JSON
  done with orjson in ``map`` steps, as the connector's documentation shows.
- ``bytewax-tuned``: the same, given the librdkafka consumer settings flowlib uses by default
  (``fetch.queue.backoff.ms=10``), to separate connector design from client tuning.

Prints a table of events/s and the ratios to ``bytewax``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("flowlib", "flowlib-eos", "bytewax", "bytewax-tuned")
# The mock broker keeps ~5 MB per partition: compressed batches keep all 1M events.
COMPRESSION = {"compression.type": "lz4"}


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    user: str
    amount: float
    ts: int


@dataclass(frozen=True, slots=True)
class Scored:
    id: int
    user: str
    cents: int
    big: bool


def score(e: Event) -> Scored:
    return Scored(e.id, e.user, round(e.amount * 100), e.amount > 500)


def score_dict(e: dict[str, Any]) -> dict[str, Any]:
    return {"id": e["id"], "user": e["user"], "cents": round(e["amount"] * 100),
            "big": e["amount"] > 500}


def write_input(brokers: str, topic: str, n: int) -> None:
    import orjson
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, **COMPRESSION})
    for i in range(n):
        value = orjson.dumps({"id": i, "user": f"u{i % 1000}", "amount": (i % 10_000) / 10,
                              "ts": 1_700_000_000 + i})
        while True:
            try:
                p.produce(topic, value, partition=i % 4)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0


def count_output(brokers: str, topic: str, committed: bool) -> int:
    """Records in ``topic``: from the offsets, or by reading it for transactional output (the
    offsets also count transaction markers)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-count",
                  "enable.partition.eof": True, "isolation.level": "read_committed"})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        parts = sorted(md.partitions)
        if not committed:
            return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                       for p in parts)
        c.assign([TopicPartition(topic, p, -2) for p in parts])
        n, ended = 0, set[int]()
        while len(ended) < len(parts):
            for m in c.consume(10_000, 1.0):
                err = m.error()
                if err is None:
                    n += 1
                elif err.code() == KafkaError._PARTITION_EOF:
                    ended.add(m.partition() or 0)
        return n
    finally:
        c.close()


def run_flowlib(brokers: str, source: str, out: str, exactly_once: bool) -> float:
    from flowlib import DeadLetter, Flow, ListSink
    from flowlib.connectors.kafka import KafkaSink, KafkaSource
    from flowlib.engine import run

    started = time.perf_counter()
    flow = Flow("bench", dead_letters=ListSink(DeadLetter))
    events = flow.source(KafkaSource(source, Event, brokers=brokers, stop_at_end=True))
    events.map(score).sink(KafkaSink(out, Scored, brokers=brokers, config=COMPRESSION,
                                     exactly_once=exactly_once, transactional_id=out))
    report = run(flow, snapshot_interval=timedelta(seconds=1))
    elapsed = time.perf_counter() - started
    assert report.dead_letters == 0
    return elapsed


def run_bytewax(brokers: str, source: str, out: str, tuned: bool) -> float:
    import bytewax.operators as op
    import orjson
    from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main

    started = time.perf_counter()
    flow = Dataflow("bench")
    config = {"fetch.queue.backoff.ms": "10"} if tuned else {}
    msgs = op.input("in", flow, KafkaSource([brokers], [source], tail=False, add_config=config))
    # raise_on_errors (the default) makes the source raise instead of emitting KafkaError items.
    scored = op.map("score", msgs, lambda m: score_dict(orjson.loads(m.value)))  # type: ignore[union-attr, arg-type]
    encoded = op.map("encode", scored, lambda d: KafkaSinkMessage(None, orjson.dumps(d)))
    op.output("out", encoded, KafkaSink([brokers], out, add_config=COMPRESSION))
    run_main(flow, epoch_interval=timedelta(seconds=1))
    return time.perf_counter() - started


def child(peer: str, brokers: str, source: str, out: str) -> None:
    if peer.startswith("flowlib"):
        seconds = run_flowlib(brokers, source, out, exactly_once=peer == "flowlib-eos")
    else:
        seconds = run_bytewax(brokers, source, out, tuned=peer == "bytewax-tuned")
    print(json.dumps({"seconds": seconds}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--child", nargs=4, metavar=("PEER", "BROKERS", "IN", "OUT"),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return 0
    from flowlib.testing.kafka_broker import MockKafkaBroker

    peers = args.peers.split(",")
    with MockKafkaBroker() as broker:
        brokers = broker.bootstrap
        assert brokers is not None
        source = f"bench-in-{uuid.uuid4().hex[:8]}"
        t = time.perf_counter()
        write_input(brokers, source, args.events)
        print(f"wrote {args.events:,} events to {source} in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        times: dict[str, list[float]] = {peer: [] for peer in peers}
        for r in range(args.rounds):
            for peer in peers:
                out = f"bench-out-{peer}-{r}-{uuid.uuid4().hex[:6]}"
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", peer, brokers, source, out],
                    capture_output=True, text=True, cwd=ROOT, check=False)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return 1
                seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
                got = count_output(brokers, out, committed=peer == "flowlib-eos")
                ok = got == args.events
                print(f"round {r + 1} {peer:14} {seconds:7.2f} s "
                      f"{args.events / seconds:>10,.0f} events/s  output {got:,}"
                      f"{'' if ok else '  WRONG'}", file=sys.stderr)
                if not ok:
                    return 1
                times[peer].append(seconds)
    base = statistics.median(times["bytewax"]) if times.get("bytewax") else None
    print(f"\n{args.events:,} events, median of {args.rounds} round(s), mock broker")
    print(f"{'peer':14} {'seconds':>8} {'events/s':>12} {'vs bytewax':>11}")
    for peer, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{base / med:10.2f}x" if base else ""
        print(f"{peer:14} {med:8.2f} {args.events / med:12,.0f} {ratio:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
