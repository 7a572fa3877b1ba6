"""KafkaSource: one flowlib source partition per Kafka topic-partition, offsets in checkpoints.

Kafka's consumer groups are not used: each partition is assigned explicitly and its next offset
is the position flowlib checkpoints, so a resumed run reads on from exactly there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from typing_extensions import override

from flowlib._types import return_type
from flowlib.connectors.base import Source, SourcePartition
from flowlib.connectors.kafka._client import consumer_config, new_consumer, retry_call
from flowlib.connectors.kafka._convert import (
    Converter,
    MessageConverter,
    ParseConverter,
    ValueConverter,
)
from flowlib.connectors.kafka._errors import KafkaConnectorError
from flowlib.connectors.kafka._message import KafkaMessage
from flowlib.connectors.kafka._retry import KafkaRetry
from flowlib.dead_letter import DeadLetter

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, Message

__all__ = ["KafkaSource"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

Start = Literal["earliest", "latest"]

_IDLE_WAIT = 0.01
"""Seconds a read waits for a first message when none is ready: short, because the worker thread
has other steps to run, and the engine comes back soon after an empty batch."""

_LIST_LOCK = threading.Lock()

# Connection trouble that librdkafka recovers from by itself; the source only bounds its length.
_OUTAGE = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT",
                     "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION",
                     "BROKER_NOT_AVAILABLE", "REQUEST_TIMED_OUT", "NETWORK_EXCEPTION"})


@dataclass(frozen=True)
class _Options:
    brokers: str
    stop_at_end: bool
    start: Start
    config: Mapping[str, Any]
    retry: KafkaRetry
    batch_size: int


class KafkaSource(Source[T]):
    """Typed events from Kafka topics, one flowlib partition per topic-partition.

    - ``KafkaSource(topic, T, brokers=...)`` decodes each message's value as ``T``: ``bytes``
      as is, ``str`` as UTF-8 text, anything else as JSON validated against ``T``.
    - ``KafkaSource(topic, parse=fn, brokers=...)`` gives each value, as text, to ``fn``; the
      events have ``fn``'s return type.
    - :meth:`KafkaSource.messages` yields :class:`KafkaMessage` records: typed key and value,
      headers, timestamp, topic, partition and offset.

    A message that does not decode or parse becomes a dead letter carrying its exact value
    bytes and its ``topic/partition@offset``; the run goes on. Each partition's next offset is
    saved in flowlib's checkpoints: a resumed run continues exactly where its checkpoint left
    off (offsets are never committed to a consumer group). ``start`` says where a partition
    without a checkpoint begins. With ``stop_at_end=True`` each partition is read up to its end
    as of the start of the run (kept across a resume), then the input ends; by default the
    source follows the topic forever. ``read_committed`` is the default isolation, so records of
    aborted transactions are never read. ``config`` adds or overrides librdkafka settings.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Click:
    ...     user: str
    ...     page: str
    >>> src = KafkaSource("clicks", Click, brokers="localhost:9092", stop_at_end=True)
    >>> src.item_type is Click, src.topics
    (True, ('clicks',))
    """

    @overload
    def __init__(
        self: KafkaSource[T],
        topic: str | Sequence[str],
        value_type: type[T],
        *,
        brokers: str,
        stop_at_end: bool = False,
        start: Start = "earliest",
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        batch_size: int = 10_000,
    ) -> None: ...
    @overload
    def __init__(
        self: KafkaSource[T],
        topic: str | Sequence[str],
        *,
        parse: Callable[[str], T],
        brokers: str,
        stop_at_end: bool = False,
        start: Start = "earliest",
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        batch_size: int = 10_000,
    ) -> None: ...
    def __init__(
        self,
        topic: str | Sequence[str],
        value_type: type[T] | None = None,
        *,
        parse: Callable[[str], T] | None = None,
        brokers: str,
        stop_at_end: bool = False,
        start: Start = "earliest",
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        batch_size: int = 10_000,
    ) -> None:
        options = _Options(brokers, stop_at_end, start, dict(config or {}), retry or KafkaRetry(),
                           batch_size)
        if value_type is not None and parse is None:
            self._setup(topic, ValueConverter(value_type), value_type, options)
        elif parse is not None and value_type is None:
            self._setup(topic, ParseConverter(parse), return_type(parse), options)
        else:
            msg = "KafkaSource takes either value_type or parse=, not both or neither"
            raise TypeError(msg)

    @overload
    @classmethod
    def messages(
        cls,
        topic: str | Sequence[str],
        value_type: type[V],
        *,
        brokers: str,
        stop_at_end: bool = False,
        start: Start = "earliest",
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        batch_size: int = 10_000,
    ) -> KafkaSource[KafkaMessage[bytes, V]]: ...
    @overload
    @classmethod
    def messages(
        cls,
        topic: str | Sequence[str],
        value_type: type[V],
        *,
        key_type: type[K],
        brokers: str,
        stop_at_end: bool = False,
        start: Start = "earliest",
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        batch_size: int = 10_000,
    ) -> KafkaSource[KafkaMessage[K, V]]: ...
    @classmethod
    def messages(
        cls,
        topic: str | Sequence[str],
        value_type: type[V],
        *,
        key_type: type[Any] = bytes,
        brokers: str,
        stop_at_end: bool = False,
        start: Start = "earliest",
        config: Mapping[str, Any] | None = None,
        retry: KafkaRetry | None = None,
        batch_size: int = 10_000,
    ) -> KafkaSource[KafkaMessage[Any, V]]:
        """A source of whole :class:`KafkaMessage` records; keys decode as ``key_type``
        (raw ``bytes`` by default), values as ``value_type``.

        >>> src = KafkaSource.messages("clicks", str, key_type=str, brokers="localhost:9092")
        >>> src.item_type == KafkaMessage[str, str]
        True
        """
        options = _Options(brokers, stop_at_end, start, dict(config or {}), retry or KafkaRetry(),
                           batch_size)
        src = cast("KafkaSource[KafkaMessage[Any, V]]", object.__new__(cls))
        item_type = cast(Any, KafkaMessage)[key_type, value_type]
        src._setup(topic, MessageConverter(key_type, value_type), item_type, options)
        return src

    def _setup(
        self, topic: str | Sequence[str], convert: Converter[T], item_type: object, o: _Options
    ) -> None:
        self.topics = (topic,) if isinstance(topic, str) else tuple(topic)
        if not self.topics:
            msg = "KafkaSource needs at least one topic"
            raise ValueError(msg)
        if o.start not in ("earliest", "latest"):
            msg = f"start must be 'earliest' or 'latest', not {o.start!r}"
            raise ValueError(msg)
        if not 1 <= o.batch_size <= 1_000_000:  # librdkafka's limit for one consume call
            msg = f"batch_size must be from 1 to 1000000, not {o.batch_size}"
            raise ValueError(msg)
        self.item_type = item_type
        self.brokers = o.brokers
        self.stop_at_end = o.stop_at_end
        self._options = o
        self._convert = convert
        self._parts: list[str] | None = None

    @override
    def partitions(self) -> list[str]:
        # Every worker asks; one metadata request per process is enough.
        with _LIST_LOCK:
            if self._parts is None:
                self._parts = _list_partitions(self.topics, self._options)
            return list(self._parts)

    @override
    def open(self, partition: str, step: str, resume: Any | None) -> SourcePartition[T]:
        topic, _, index = partition.rpartition("/")
        return _PartitionReader(self, topic, int(index), step, resume)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_parts"] = None  # partitions are listed again where the source is used
        return state


def _list_partitions(topics: Sequence[str], o: _Options) -> list[str]:
    consumer = new_consumer(consumer_config(o.brokers, o.config))
    try:
        names = []
        for topic in topics:

            def metadata(timeout: float, topic: str = topic) -> Any:
                return consumer.list_topics(topic, timeout=timeout)

            md = retry_call(f"list the partitions of topic {topic!r}", metadata, o.retry,
                            o.brokers)
            found = md.topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                why = found.error if found is not None and found.error is not None else "unknown"
                msg = f"Kafka topic {topic!r} not found at {o.brokers} ({why}): create it first"
                raise KafkaConnectorError(msg)
            names += [f"{topic}/{p}" for p in sorted(found.partitions)]
        return names
    finally:
        consumer.close()


def _resume(resume: Any | None) -> tuple[int | None, int | None]:
    """``(next offset, stop offset)`` from a position (a bare offset is accepted too)."""
    if resume is None:
        return None, None
    if isinstance(resume, int):
        return resume, None
    next_offset, stop = resume
    return next_offset, stop


class _PartitionReader(SourcePartition[T]):
    """Reads one topic-partition; its position is ``(next offset, stop offset or None)``."""

    def __init__(
        self, src: KafkaSource[T], topic: str, partition: int, step: str, resume: Any | None
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        o = src._options
        self._o = o
        self._convert = src._convert
        self._step = step
        self._where = f"{topic}/{partition}"
        self._next, stop = _resume(resume)
        self._done = False
        self._heard = time.monotonic()  # when the brokers last answered
        self._consumer: Consumer = new_consumer(
            consumer_config(o.brokers, o.config, **{"enable.partition.eof": o.stop_at_end})
        )
        tp = TopicPartition(topic, partition)
        low = high = None
        if (o.stop_at_end and stop is None) or (self._next is None and o.start == "latest"):
            low, high = retry_call(
                f"read the offsets of {self._where}",
                lambda timeout: self._consumer.get_watermark_offsets(tp, timeout=timeout),
                o.retry, o.brokers,
            )
            if self._next is None and o.start == "latest":
                self._next = high
        else:  # fail early, and clearly, when the brokers cannot be reached
            retry_call(f"reach {self._where}",
                       lambda timeout: self._consumer.list_topics(topic, timeout=timeout),
                       o.retry, o.brokers)
        self._stop = (stop if stop is not None else high) if o.stop_at_end else None
        self._low = low or 0
        if self._stop is not None and (
            (self._next if self._next is not None else self._low) >= self._stop
        ):
            self._done = True  # nothing to read before the end
            return
        start = self._next if self._next is not None else OFFSET_BEGINNING
        self._consumer.assign([TopicPartition(topic, partition, start)])

    @override
    def read_batch(self) -> tuple[list[T], list[DeadLetter]] | None:
        if self._done:
            return None
        size = self._o.batch_size
        consumer = self._consumer
        msgs = consumer.consume(size, 0)
        if not msgs:
            first = consumer.poll(_IDLE_WAIT)
            if first is None:
                if time.monotonic() - self._heard > self._o.retry.timeout:
                    self._probe()  # a quiet partition, or dead brokers? Ask.
                return [], []
            msgs = [first, *consumer.consume(size - 1, 0)] if size > 1 else [first]
        data: list[Message] = [m for m in msgs if m.error() is None]
        ended = False
        if len(data) != len(msgs):  # rare: end-of-partition and error events
            for m in msgs:
                if m.error() is not None:
                    ended = self._on_error(m) or ended
        if data:
            self._heard = time.monotonic()
            stop = self._stop
            if stop is not None and (data[-1].offset() or 0) >= stop - 1:
                data = [m for m in data if (m.offset() or 0) < stop]
                ended = True
            if data:
                self._next = (data[-1].offset() or 0) + 1
        if ended:
            self._done = True
            if not data:
                return None
        return self._convert(data, self._step)

    def _on_error(self, m: Message) -> bool:
        """Handle an error event; returns whether it marks the end of a bounded read."""
        err: KafkaError = m.error()  # type: ignore[assignment]  # checked by the caller
        code = err.name()
        if code == "_PARTITION_EOF":
            # The end of what is there now; offsets past the last message may be transaction
            # markers, which are never delivered, so the offset of the end is what counts.
            self._heard = time.monotonic()
            return self._stop is not None and (m.offset() or 0) >= self._stop
        if code in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION"):
            msg = f"Kafka {self._where}: the topic or partition no longer exists ({err})"
            raise KafkaConnectorError(msg)
        if code in ("OFFSET_OUT_OF_RANGE", "_AUTO_OFFSET_RESET"):
            msg = (
                f"Kafka {self._where}: offset {self._next} is no longer in the log (deleted by "
                f"retention?): records there were lost before this source read them ({err})"
            )
            raise KafkaConnectorError(msg)
        if code in _OUTAGE or (err.retriable() and not err.fatal()):
            self._probe()  # librdkafka reconnects by itself; this bounds how long it may try
            return False
        msg = f"Kafka {self._where}: cannot read: {err}"
        raise KafkaConnectorError(msg)

    def _probe(self) -> None:
        """Ask the brokers for the topic's metadata, with bounded retries and backoff; raises
        :class:`KafkaUnavailableError` when they stay unreachable."""
        o = self._o
        topic = self._where.rpartition("/")[0]
        retry_call(f"read {self._where}",
                   lambda timeout: self._consumer.list_topics(topic, timeout=timeout),
                   o.retry, o.brokers)
        self._heard = time.monotonic()

    @override
    def position(self) -> tuple[int | None, int | None]:
        return (self._next, self._stop)

    @override
    def size_hint(self) -> tuple[int, int] | None:
        if self._stop is None:
            return None
        done = self._stop if self._done else (self._next or self._low)
        return (done - self._low, self._stop - self._low)

    @override
    def close(self) -> None:
        self._consumer.close()
