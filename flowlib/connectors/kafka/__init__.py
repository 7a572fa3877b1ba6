"""Kafka sources and sinks: typed, partition-aware, with offsets in flowlib's checkpoints.

- :class:`KafkaSource` reads typed events (or whole :class:`KafkaMessage` records), one flowlib
  partition per topic-partition, resuming exactly at the checkpointed offsets.
- :class:`KafkaSink` writes typed values (or :class:`KafkaRecord` items), at-least-once or
  exactly-once through transactions committed per checkpoint.
- :class:`KafkaDeadLetterSink` writes a flow's dead letters with their original bytes.

See ``docs/kafka.md``; :mod:`flowlib.testing.kafka_broker` runs a broker for tests.
"""

from flowlib.connectors.kafka._client import KafkaClients, OffsetsClient, ProducerLike
from flowlib.connectors.kafka._dead_letters import KafkaDeadLetterSink
from flowlib.connectors.kafka._errors import (
    KafkaConnectorError,
    KafkaDeliveryError,
    KafkaUnavailableError,
)
from flowlib.connectors.kafka._message import KafkaMessage, KafkaRecord
from flowlib.connectors.kafka._retry import KafkaRetry
from flowlib.connectors.kafka._sink import KafkaSink
from flowlib.connectors.kafka._source import KafkaSource

__all__ = [
    "KafkaClients",
    "KafkaConnectorError",
    "KafkaDeadLetterSink",
    "KafkaDeliveryError",
    "KafkaMessage",
    "KafkaRecord",
    "KafkaRetry",
    "KafkaSink",
    "KafkaSource",
    "KafkaUnavailableError",
    "OffsetsClient",
    "ProducerLike",
]
