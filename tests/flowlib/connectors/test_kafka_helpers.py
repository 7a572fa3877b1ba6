"""Helpers for the Kafka tests: write to and read back from a real (mock) broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from flowlib.connectors.kafka import KafkaRetry

__all__ = ["FAST", "Got", "consume", "new_topic", "produce"]

FAST = KafkaRetry(attempts=3, first_delay=0.1, max_delay=0.2, timeout=0.5)
"""A short retry budget, for tests of unreachable brokers."""


def new_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Got:
    """A message read back: its coordinates and content."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int


def produce(
    brokers: str,
    topic: str,
    values: Iterable[bytes | None],
    *,
    keys: Sequence[bytes | None] | None = None,
    headers: list[tuple[str, str | bytes | None]] | None = None,
    timestamp: int = 0,
    partition: int = -1,
) -> list[tuple[int, int]]:
    """Write ``values``; returns each one's ``(partition, offset)``, in order."""
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5,
                         "compression.type": "lz4"})  # the mock keeps ~5 MB per partition
    order: list[tuple[int, int] | None] = []
    for i, value in enumerate(values):
        order.append(None)

        def on_delivery(err: KafkaError | None, msg: Message, i: int = i) -> None:
            assert err is None, err
            order[i] = (msg.partition() or 0, msg.offset() or 0)

        while True:
            try:
                producer.produce(topic, value, keys[i] if keys else None, partition,
                                 on_delivery=on_delivery, timestamp=timestamp,
                                 headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0, "not all test records were written"
    assert None not in order
    return [o for o in order if o is not None]


def consume(
    brokers: str, topic: str, *, committed: bool = True, timeout: float = 30
) -> list[Got]:
    """Every message of ``topic`` (all partitions, up to their current end), by partition and
    offset."""
    consumer = Consumer({
        "bootstrap.servers": brokers, "group.id": "test-reader", "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed" if committed else "read_uncommitted",
    })
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, -2) for p in parts])  # -2: the beginning
        out: list[Got] = []
        ended: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(ended) < len(parts):
            assert time.monotonic() < deadline, f"could not read all of topic {topic!r}"
            m = consumer.poll(0.5)
            if m is None:
                continue
            err = m.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                ended.add(m.partition() or 0)
                continue
            hs = [(h, x if x is None or isinstance(x, bytes) else x.encode())
                  for h, x in cast("list[tuple[str, str | bytes | None]]", m.headers() or [])]
            out.append(Got(m.partition() or 0, m.offset() or 0, m.key(), m.value(), tuple(hs),
                           m.timestamp()[1]))
        return sorted(out, key=lambda g: (g.partition, g.offset))
    finally:
        consumer.close()
