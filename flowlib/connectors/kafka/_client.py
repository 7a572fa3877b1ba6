"""Building librdkafka clients: default settings, the seam for fake clients, error triage.

``confluent_kafka`` is imported on first use, not with flowlib: most flows never touch Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flowlib.connectors.kafka._retry import KafkaRetry, retrying

if TYPE_CHECKING:
    from confluent_kafka import Consumer, TopicPartition

__all__ = [
    "KafkaClients",
    "OffsetsClient",
    "ProducerLike",
    "consumer_config",
    "error_code",
    "new_consumer",
    "producer_config",
    "retry_call",
    "transient",
]

R = TypeVar("R")

LOGGER = logging.getLogger("flowlib.kafka")
"""librdkafka's own log lines go here (served while the client polls)."""

# Errors that retrying cannot fix: bad credentials, missing rights, invalid settings.
_PERMANENT = frozenset({
    "_AUTHENTICATION", "_INVALID_ARG", "_UNKNOWN_PROTOCOL", "_FENCED", "_NOT_IMPLEMENTED",
    "SASL_AUTHENTICATION_FAILED", "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    "INVALID_TRANSACTION_TIMEOUT", "UNSUPPORTED_VERSION",
})


class ProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` the sinks use (fakes implement just this)."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        *,
        timestamp: int = 0,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None: ...
    def poll(self, timeout: float = -1) -> int: ...
    def flush(self, timeout: float = -1) -> int: ...
    def __len__(self) -> int: ...
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...
    def init_transactions(self, timeout: float = -1) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None: ...
    def commit_transaction(self, timeout: float = -1) -> None: ...
    def abort_transaction(self, timeout: float = -1) -> None: ...


class OffsetsClient(Protocol):
    """The part of ``confluent_kafka.Consumer`` that reads a group's committed offsets."""

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]: ...
    def consumer_group_metadata(self) -> Any: ...
    def close(self) -> None: ...


class KafkaClients(Protocol):
    """Makes the clients a sink talks through; pass fakes to test failure handling.

    The default makes ``confluent_kafka`` producers and consumers from the given settings.
    """

    def producer(self, config: dict[str, Any]) -> ProducerLike: ...
    def consumer(self, config: dict[str, Any]) -> OffsetsClient: ...


class ConfluentClients:
    """Real librdkafka clients."""

    def producer(self, config: dict[str, Any]) -> ProducerLike:
        from confluent_kafka import Producer

        return Producer(config)

    def consumer(self, config: dict[str, Any]) -> OffsetsClient:
        return new_consumer(config)


def new_consumer(config: dict[str, Any]) -> Consumer:
    from confluent_kafka import Consumer

    return Consumer(config)


def consumer_config(brokers: str, extra: Mapping[str, Any], **settings: Any) -> dict[str, Any]:
    """Consumer settings: flowlib's defaults, then ``settings``, then the user's ``extra``."""
    config: dict[str, Any] = {
        "bootstrap.servers": brokers,
        # Offsets live in flowlib's checkpoints; the group id is required but never joined.
        "group.id": "flowlib",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # A checkpointed offset that retention deleted must fail the run, not skip records.
        "auto.offset.reset": "error",
        "isolation.level": "read_committed",
        # librdkafka pauses fetching for 1 s by default once its local queue is full; a source
        # drains that queue in large batches, so a long pause would leave it idle.
        "fetch.queue.backoff.ms": 10,
        "logger": LOGGER,
        **settings,
    }
    config.update(extra)
    return config


def producer_config(
    brokers: str, retry: KafkaRetry, extra: Mapping[str, Any], **settings: Any
) -> dict[str, Any]:
    """Producer settings: idempotent, acks from all replicas, delivery bounded by ``retry``."""
    config: dict[str, Any] = {
        "bootstrap.servers": brokers,
        # No duplicates or reordering from librdkafka's own retries; implies acks=all.
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": max(1000, int(retry.budget * 1000)),
        "logger": LOGGER,
        **settings,
    }
    config.update(extra)
    return config


def error_code(exc: BaseException) -> str | None:
    """The librdkafka error name carried by a ``KafkaException`` (``_TRANSPORT``...)."""
    err = exc.args[0] if exc.args else None
    name = getattr(err, "name", None)
    return str(name()) if callable(name) else None


def transient(exc: Exception) -> bool:
    """Whether retrying may help: a Kafka error that is neither fatal nor a permanent refusal."""
    from confluent_kafka import KafkaException

    if not isinstance(exc, KafkaException):
        return False
    err = exc.args[0] if exc.args else None
    fatal = getattr(err, "fatal", None)
    if callable(fatal) and fatal():
        return False
    return error_code(exc) not in _PERMANENT


def retry_call(what: str, attempt: Callable[[float], R], retry: KafkaRetry, brokers: str) -> R:
    """:func:`retrying` with Kafka's error triage."""
    return retrying(what, attempt, retry, brokers, transient)
