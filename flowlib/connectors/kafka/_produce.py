"""Producing encoded records and keeping count of those Kafka refused (delivery callbacks)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowlib.connectors.kafka._client import ProducerLike
from flowlib.connectors.kafka._errors import KafkaConnectorError, KafkaDeliveryError

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

__all__ = ["Deliveries", "Rec", "flush", "produce_all"]

Rec = tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]] | None, int, int]
"""An encoded record: ``(value, key, headers or None, timestamp ms or 0, partition or -1)``.

Plain tuples, because records waiting for a transaction are kept in checkpoints."""

_SHOWN = 3
"""Distinct delivery errors quoted in a :class:`KafkaDeliveryError`."""


class Deliveries:
    """Collects delivery failures; the producer is configured to report only those, so a
    successful record costs no Python callback."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.failed = 0
        self.reasons: list[str] = []
        self.fatal: str | None = None

    def settings(self) -> dict[str, Any]:
        """Producer settings that route failures here."""
        return {
            "on_delivery": self.on_delivery,
            "delivery.report.only.error": True,
            "error_cb": self.on_error,
        }

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        self.failed += 1
        reason = str(err)
        if len(self.reasons) < _SHOWN and reason not in self.reasons:
            self.reasons.append(reason)

    def on_error(self, err: KafkaError) -> None:
        # Connection errors are retried by librdkafka (and logged); only a fatal one, which
        # makes the producer unusable, must stop the sink.
        if err.fatal():
            self.fatal = str(err)

    def reset(self) -> str:
        """Forget failures (a transaction that is retried as a whole); returns their summary."""
        summary = "; ".join(self.reasons)
        self.failed, self.reasons = 0, []
        return summary

    def check(self) -> None:
        """Raise when a record failed, or the producer hit a fatal error, since the last check."""
        if self.fatal is not None:
            msg = f"Kafka producer for topic {self.topic!r} failed: {self.fatal}"
            raise KafkaConnectorError(msg)
        if self.failed:
            failed, reasons = self.failed, "; ".join(self.reasons)
            self.failed, self.reasons = 0, []
            msg = f"{failed} record(s) not written to Kafka topic {self.topic!r}: {reasons}"
            raise KafkaDeliveryError(msg)


def produce_all(producer: ProducerLike, topic: str, records: Iterable[Rec]) -> int:
    """Queue ``records`` for ``topic``; waits for room when librdkafka's queue is full."""
    produce = producer.produce
    n = 0
    for value, key, headers, timestamp, partition in records:
        n += 1
        while True:
            try:
                if headers is None and timestamp == 0 and partition == -1:
                    produce(topic, value, key)
                else:
                    produce(topic, value, key, partition, timestamp=timestamp, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)  # let deliveries drain the queue
    producer.poll(0)  # serve delivery callbacks that are due
    return n


def flush(producer: ProducerLike, topic: str, timeout: float) -> None:
    """Wait until every queued record is acknowledged or has failed (then reported by
    :class:`Deliveries`); raises if some are still pending after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while len(producer) > 0:
        left = deadline - time.monotonic()
        if left <= 0:
            msg = (
                f"{len(producer)} record(s) for Kafka topic {topic!r} still unacknowledged "
                f"after {timeout:.0f} s: are the brokers reachable?"
            )
            raise KafkaDeliveryError(msg)
        producer.flush(min(left, 1.0))
