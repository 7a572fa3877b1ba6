"""The record types of the Kafka connectors: a message as read, a record to write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

__all__ = ["KafkaMessage", "KafkaRecord"]

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class KafkaMessage(Generic[K, V]):
    """One Kafka message as read by :meth:`KafkaSource.messages`: typed key and value plus
    where it came from.

    >>> m = KafkaMessage("user-1", 42, "clicks", 3, 1017, None, (("trace", b"ab"),))
    >>> m.key, m.value, f"{m.topic}/{m.partition}@{m.offset}", m.header("trace")
    ('user-1', 42, 'clicks/3@1017', b'ab')
    """

    key: K | None
    """The decoded key; ``None`` when the message has none."""
    value: V
    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    """The message's timestamp (UTC), ``None`` when the broker gave none."""
    headers: tuple[tuple[str, bytes | None], ...] = ()

    def header(self, name: str) -> bytes | None:
        """The value of the last header called ``name``, ``None`` if there is none."""
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class KafkaRecord(Generic[K, V]):
    """One record to write with :meth:`KafkaSink.records`: a value and, optionally, its key,
    headers, timestamp and partition (otherwise chosen from the key, as Kafka does).

    >>> KafkaRecord({"level": "error"}, key="web-1", headers=[("source", b"apache")]).key
    'web-1'
    """

    value: V
    key: K | None = None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp: datetime | None = None
    partition: int | None = None
