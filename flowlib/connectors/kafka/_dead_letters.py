"""KafkaDeadLetterSink: dead letters to a topic, original bytes as the value, context in headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from typing_extensions import override

from flowlib.connectors.kafka._client import KafkaClients
from flowlib.connectors.kafka._convert import parse_origin
from flowlib.connectors.kafka._produce import Rec
from flowlib.connectors.kafka._retry import KafkaRetry
from flowlib.connectors.kafka._sink import KafkaSink
from flowlib.dead_letter import DeadLetter

__all__ = ["HEADERS", "KafkaDeadLetterSink"]

HEADERS = (
    "flowlib.step", "flowlib.error_type", "flowlib.error", "flowlib.time", "flowlib.origin",
    "flowlib.source.topic", "flowlib.source.partition", "flowlib.source.offset",
)
"""Header names, in the order written; ``origin`` and ``source.*`` only when known."""


def _records(items: Sequence[DeadLetter]) -> list[Rec]:
    out: list[Rec] = []
    for d in items:
        headers: list[tuple[str, str | bytes | None]] = [
            ("flowlib.step", d.step.encode()),
            ("flowlib.error_type", d.error_type.encode()),
            ("flowlib.error", d.error.encode("utf-8", "backslashreplace")),
            ("flowlib.time", d.time.isoformat().encode()),
        ]
        if d.origin is not None:
            headers.append(("flowlib.origin", d.origin.encode("utf-8", "backslashreplace")))
            coordinates = parse_origin(d.origin)
            if coordinates is not None:
                topic, partition, offset = coordinates
                headers += [
                    ("flowlib.source.topic", topic.encode()),
                    ("flowlib.source.partition", str(partition).encode()),
                    ("flowlib.source.offset", str(offset).encode()),
                ]
        value = d.raw if d.raw is not None else d.record.encode("utf-8", "backslashreplace")
        out.append((value, None, headers, 0, -1))
    return out


class KafkaDeadLetterSink(KafkaSink[DeadLetter]):
    """A flow's dead letters to a Kafka topic: ``Flow(..., dead_letters=KafkaDeadLetterSink(...))``.

    Each message's value is the failed record exactly as it was read (a Kafka source keeps the
    original bytes; other steps give the record as text or JSON). Headers carry the context:
    ``flowlib.step``, ``flowlib.error_type``, ``flowlib.error``, ``flowlib.time`` (ISO 8601),
    ``flowlib.origin`` and, for records read from Kafka, ``flowlib.source.topic``,
    ``flowlib.source.partition`` and ``flowlib.source.offset``. Delivery options and guarantees
    are those of :class:`KafkaSink` (at-least-once, or ``exactly_once=True``).

    >>> sink = KafkaDeadLetterSink("dead-letters", brokers="localhost:9092")
    >>> sink.item_type is DeadLetter, sink.guarantee
    (True, 'at-least-once')
    """

    def __init__(
        self,
        topic: str,
        *,
        brokers: str,
        exactly_once: bool = False,
        transactional_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        clients: KafkaClients | None = None,
    ) -> None:
        self._setup(topic, DeadLetter, _records, brokers, exactly_once, transactional_id, config,
                    retry, clients)

    @property
    @override
    def name_hint(self) -> str:
        return "dead_letters"
