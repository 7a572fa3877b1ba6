"""Sources and sinks: files, in-memory lists (and the interfaces to write your own)."""

from flowlib.connectors.base import Sink, SinkPartition, Source, SourcePartition
from flowlib.connectors.files import JsonLinesSink, JsonLinesSource, TextLines
from flowlib.connectors.kafka import (
    KafkaDeadLetterSink,
    KafkaMessage,
    KafkaRecord,
    KafkaRetry,
    KafkaSink,
    KafkaSource,
)
from flowlib.connectors.memory import ListSink, ListSource

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
