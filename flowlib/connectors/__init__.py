"""Sources and sinks: files, in-memory lists (and the interfaces to write your own)."""

from typing import TYPE_CHECKING

from flowlib.connectors.base import Sink, SinkPartition, Source, SourcePartition
from flowlib.connectors.files import JsonLinesSink, JsonLinesSource, TextLines
from flowlib.connectors.memory import ListSink, ListSource

if TYPE_CHECKING:
    from flowlib.connectors.kafka import (
        KafkaDeadLetterSink,
        KafkaMessage,
        KafkaRecord,
        KafkaRetry,
        KafkaSink,
        KafkaSource,
    )

# The Kafka connectors load on first use: their client library and TLS stack are a good part
# of the start-up of a flow that reads files.
_KAFKA = frozenset({
    "KafkaDeadLetterSink", "KafkaMessage", "KafkaRecord", "KafkaRetry", "KafkaSink",
    "KafkaSource",
})


def __getattr__(name: str) -> object:
    if name in _KAFKA:
        from flowlib.connectors import kafka

        return getattr(kafka, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "JsonLinesSink",
    "JsonLinesSource",
    "KafkaDeadLetterSink",
    "KafkaMessage",
    "KafkaRecord",
    "KafkaRetry",
    "KafkaSink",
    "KafkaSource",
    "ListSink",
    "ListSource",
    "Sink",
    "SinkPartition",
    "Source",
    "SourcePartition",
    "TextLines",
]
