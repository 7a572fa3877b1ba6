"""KafkaSink: typed records to a topic, at-least-once or exactly-once (transactions)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast, overload

from typing_extensions import override

from flowlib._types import return_type
from flowlib.connectors.base import Sink, SinkPartition
from flowlib.connectors.kafka._client import (
    ConfluentClients,
    KafkaClients,
    ProducerLike,
    producer_config,
    retry_call,
)
from flowlib.connectors.kafka._errors import KafkaConnectorError
from flowlib.connectors.kafka._message import KafkaRecord
from flowlib.connectors.kafka._produce import Deliveries, Rec, flush, produce_all
from flowlib.connectors.kafka._retry import KafkaRetry
from flowlib.connectors.kafka._serde import encoder_for

__all__ = ["KafkaSink", "SinkSettings", "Writer", "reach_topic"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class SinkSettings:
    """Everything a sink partition needs, shared by both delivery modes."""

    topic: str
    brokers: str
    config: Mapping[str, Any]
    retry: KafkaRetry
    clients: KafkaClients
    transactional_id: str | None
    encode: Callable[[Sequence[Any]], list[Rec]]
    direct: Callable[[ProducerLike, str, Sequence[Any]], int] | None = None
    """Encodes and produces in one pass, when records need no headers, timestamp or partition
    (the at-least-once sink's fast path: no intermediate tuples)."""


def reach_topic(producer: ProducerLike, s: SinkSettings) -> None:
    """Fail early and clearly: brokers unreachable (after retries), or the topic missing on a
    cluster that does not create topics on first use."""
    md = retry_call(f"reach topic {s.topic!r}",
                    lambda timeout: producer.list_topics(s.topic, timeout=timeout),
                    s.retry, s.brokers)
    found = getattr(md, "topics", {}).get(s.topic)
    error = getattr(found, "error", None)
    if error is not None and error.name() == "UNKNOWN_TOPIC_OR_PART":
        msg = f"Kafka topic {s.topic!r} not found at {s.brokers} ({error}): create it first"
        raise KafkaConnectorError(msg)


def _millis(ts: datetime | None) -> int:
    return 0 if ts is None else int(ts.timestamp() * 1000)


def _direct(
    value_type: object, key: Callable[[Any], Any] | None
) -> Callable[[ProducerLike, str, Sequence[Any]], int]:
    value_enc = encoder_for(value_type)
    key_enc = encoder_for(return_type(key)) if key is not None else None

    def produce(producer: ProducerLike, topic: str, items: Sequence[Any]) -> int:
        send = producer.produce
        for x in items:
            value = value_enc(x)
            k = None
            if key is not None and key_enc is not None:
                kv = key(x)
                k = None if kv is None else key_enc(kv)
            while True:
                try:
                    send(topic, value, k)
                    break
                except BufferError:
                    producer.poll(0.05)  # the local queue is full: let deliveries drain it
        producer.poll(0)
        return len(items)

    return produce


def _value_encoder(
    value_type: object, key: Callable[[Any], Any] | None
) -> Callable[[Sequence[Any]], list[Rec]]:
    value_enc = encoder_for(value_type)
    if key is None:
        return lambda items: [(value_enc(x), None, None, 0, -1) for x in items]
    key_fn = key
    key_enc = encoder_for(return_type(key))

    def encode(items: Sequence[Any]) -> list[Rec]:
        out: list[Rec] = []
        for x in items:
            k = key_fn(x)
            out.append((value_enc(x), None if k is None else key_enc(k), None, 0, -1))
        return out

    return encode


def _record_encoder(key_type: object, value_type: object) -> Callable[[Sequence[Any]], list[Rec]]:
    value_enc, key_enc = encoder_for(value_type), encoder_for(key_type)

    def encode(items: Sequence[KafkaRecord[Any, Any]]) -> list[Rec]:
        return [
            (
                value_enc(r.value),
                None if r.key is None else key_enc(r.key),
                list(r.headers) if r.headers else None,
                _millis(r.timestamp),
                -1 if r.partition is None else r.partition,
            )
            for r in items
        ]

    return encode


class KafkaSink(Sink[T]):
    """Writes typed values to a Kafka topic; codecs come from the types (``bytes`` as is,
    ``str`` as UTF-8, anything else as JSON).

    ``key`` (optional) computes each record's key from the value, encoded the same way by its
    return type; Kafka picks the partition from the key. :meth:`KafkaSink.records` takes
    :class:`KafkaRecord` items instead, with key, headers, timestamp and partition.

    Guarantees across a crash and resume (see :attr:`guarantee`):

    - default, ``at-least-once``: records are produced as they come (idempotent producer,
      acknowledged by all in-sync replicas); each checkpoint waits until every record before it
      is acknowledged, and fails if one was refused. After a crash, results since the last
      checkpoint are written again.
    - ``exactly_once=True``, ``exactly-once`` for consumers with ``isolation.level=
      read_committed``: the records of each checkpoint epoch are written in one Kafka
      transaction, committed once that epoch's checkpoint is saved; a resumed run commits, or
      recognises as committed, the transaction of the checkpoint it resumes from. Results are
      therefore visible one epoch later (``--snapshot-interval``). ``transactional_id``
      (default ``flowlib.<topic>``) must be unique to this sink of this flow.

    Delivery failures are never silent: a refused record fails the checkpoint with
    :class:`KafkaDeliveryError`; unreachable brokers are retried per ``retry``, then fail with
    :class:`KafkaUnavailableError`. ``clients`` replaces the librdkafka clients (tests).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Total:
    ...     user: str
    ...     amount: float
    >>> sink = KafkaSink("totals", Total, brokers="localhost:9092", key=lambda t: t.user)
    >>> sink.guarantee, sink.partitions()
    ('at-least-once', ['totals'])
    >>> KafkaSink("totals", Total, brokers="localhost:9092", exactly_once=True).guarantee
    'exactly-once'
    """

    def __init__(
        self,
        topic: str,
        value_type: type[T],
        *,
        brokers: str,
        key: Callable[[T], Any] | None = None,
        exactly_once: bool = False,
        transactional_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        clients: KafkaClients | None = None,
    ) -> None:
        self._setup(topic, value_type, _value_encoder(value_type, key), brokers, exactly_once,
                    transactional_id, config, retry, clients, _direct(value_type, key))

    @overload
    @classmethod
    def records(
        cls,
        topic: str,
        value_type: type[V],
        *,
        brokers: str,
        exactly_once: bool = False,
        transactional_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        clients: KafkaClients | None = None,
    ) -> KafkaSink[KafkaRecord[bytes, V]]: ...
    @overload
    @classmethod
    def records(
        cls,
        topic: str,
        value_type: type[V],
        *,
        key_type: type[K],
        brokers: str,
        exactly_once: bool = False,
        transactional_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        clients: KafkaClients | None = None,
    ) -> KafkaSink[KafkaRecord[K, V]]: ...
    @classmethod
    def records(
        cls,
        topic: str,
        value_type: type[V],
        *,
        key_type: type[Any] = bytes,
        brokers: str,
        exactly_once: bool = False,
        transactional_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        clients: KafkaClients | None = None,
    ) -> KafkaSink[KafkaRecord[Any, V]]:
        """A sink of :class:`KafkaRecord` items: keys encode as ``key_type`` (raw ``bytes``
        by default), values as ``value_type``.

        >>> sink = KafkaSink.records("alerts", str, key_type=str, brokers="localhost:9092")
        >>> sink.item_type == KafkaRecord[str, str]
        True
        """
        sink = cast("KafkaSink[KafkaRecord[Any, V]]", object.__new__(cls))
        sink._setup(topic, cast(Any, KafkaRecord)[key_type, value_type],
                    _record_encoder(key_type, value_type), brokers, exactly_once,
                    transactional_id, config, retry, clients)
        return sink

    def _setup(
        self,
        topic: str,
        item_type: object,
        encode: Callable[[Sequence[Any]], list[Rec]],
        brokers: str,
        exactly_once: bool,
        transactional_id: str | None,
        config: Mapping[str, Any] | None,
        retry: KafkaRetry | None,
        clients: KafkaClients | None,
        direct: Callable[[ProducerLike, str, Sequence[Any]], int] | None = None,
    ) -> None:
        self.topic = topic
        self.item_type = item_type
        self.brokers = brokers
        self.exactly_once = exactly_once
        self._settings = SinkSettings(
            topic=topic,
            brokers=brokers,
            config=dict(config or {}),
            retry=retry or KafkaRetry(),
            clients=clients or ConfluentClients(),
            transactional_id=(transactional_id or f"flowlib.{topic}") if exactly_once else None,
            encode=encode,
            direct=direct,
        )

    @override
    def partitions(self) -> list[str]:
        return [self.topic]

    @override
    def open(self, partition: str, resume: Any | None) -> SinkPartition[T]:
        if self._settings.transactional_id is not None:
            from flowlib.connectors.kafka._transactions import TransactionalWriter

            return TransactionalWriter(self._settings, resume)
        return Writer(self._settings, resume)

    @property
    @override
    def name_hint(self) -> str:
        return self.topic

    @property
    @override
    def guarantee(self) -> str:
        return "exactly-once" if self.exactly_once else "at-least-once"


class Writer(SinkPartition[Any]):
    """At-least-once: produce as records come; every checkpoint waits for their acknowledgement.

    The position is the number of records acknowledged so far (informational: nothing is
    rewritten on resume, the replayed epoch is simply produced again).
    """

    def __init__(self, s: SinkSettings, resume: int | None) -> None:
        self._s = s
        self._deliveries = Deliveries(s.topic)
        self._producer = s.clients.producer(
            producer_config(s.brokers, s.retry, s.config, **self._deliveries.settings())
        )
        reach_topic(self._producer, s)
        self._written = resume or 0
        self._queued = 0

    @override
    def write_batch(self, items: Sequence[Any]) -> None:
        s = self._s
        if s.direct is not None:
            self._queued += s.direct(self._producer, s.topic, items)
        else:
            self._queued += produce_all(self._producer, s.topic, s.encode(items))
        self._deliveries.check()

    @override
    def position(self) -> int:
        flush(self._producer, self._s.topic, self._s.retry.budget + 5)
        self._deliveries.check()
        self._written += self._queued
        self._queued = 0
        return self._written

    @override
    def close(self) -> None:
        # Records after the last checkpoint are written again on resume: a short best effort
        # is enough here, and close must not raise while a failing run shuts down.
        with contextlib.suppress(Exception):
            self._producer.flush(min(5.0, self._s.retry.budget))
