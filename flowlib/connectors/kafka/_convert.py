"""Kafka messages -> typed events or dead letters, a batch at a time.

A record that cannot be decoded (or parsed) becomes a :class:`~flowlib.dead_letter.DeadLetter`
that keeps its untouched value bytes (``raw``) and its origin ``topic/partition@offset``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from flowlib.connectors.kafka._message import KafkaMessage
from flowlib.connectors.kafka._serde import batch_decoder_for, decoder_for, is_raw
from flowlib.dead_letter import DeadLetter

if TYPE_CHECKING:
    from confluent_kafka import Message

__all__ = [
    "Converter",
    "KeyDecodeError",
    "MessageConverter",
    "NoValueError",
    "ParseConverter",
    "ValueConverter",
    "dead_letter",
    "origin",
    "parse_origin",
]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

_ORIGIN = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)/(?P<partition>\d+)@(?P<offset>\d+)$")


def origin(m: Message) -> str:
    """Where a message came from, as dead letters record it: ``topic/partition@offset``."""
    return f"{m.topic()}/{m.partition()}@{m.offset()}"


def parse_origin(text: str | None) -> tuple[str, int, int] | None:
    """``(topic, partition, offset)`` of an :func:`origin` string; ``None`` for other origins."""
    found = _ORIGIN.match(text) if text else None
    if found is None:
        return None
    return found["topic"], int(found["partition"]), int(found["offset"])


def dead_letter(step: str, error: BaseException, m: Message) -> DeadLetter:
    value = m.value()
    raw = value if value is not None else b""
    return dataclasses.replace(DeadLetter.from_error(step, error, raw, origin(m)), raw=raw)


class NoValueError(ValueError):
    """A message without a value (a tombstone) where the declared type needs one."""


class KeyDecodeError(ValueError):
    """A message whose key does not decode as the declared key type."""


class Converter(Protocol[T]):
    """Turns the data messages of one batch into events and dead letters."""

    def __call__(self, msgs: list[Message], step: str) -> tuple[list[T], list[DeadLetter]]: ...


def _one_by_one(
    msgs: list[Message], step: str, convert: Callable[[Message], T]
) -> tuple[list[T], list[DeadLetter]]:
    events: list[T] = []
    dead: list[DeadLetter] = []
    for m in msgs:
        try:
            events.append(convert(m))
        except Exception as exc:  # any decode or parse failure is a dead letter
            dead.append(dead_letter(step, exc, m))
    return events, dead


class ValueConverter(Generic[T]):
    """Each message's value decoded as ``T``."""

    def __init__(self, value_type: type[T]) -> None:
        self._decode = decoder_for(value_type)
        self._batch = batch_decoder_for(value_type)
        # A tombstone decodes as JSON null: valid where the type allows None, else a dead letter.
        self._null = None if is_raw(value_type) else b"null"

    def __call__(self, msgs: list[Message], step: str) -> tuple[list[T], list[DeadLetter]]:
        if self._batch is not None and msgs:
            values = [m.value() for m in msgs]
            if None not in values:
                joined = b"\n".join(values)  # type: ignore[arg-type]  # None was ruled out
                # One C call for the whole batch, when no value has a newline of its own that
                # would split it; any failure is redone value by value to find the bad ones.
                if joined.count(b"\n") == len(values) - 1:
                    try:
                        events = self._batch(joined)
                    except Exception:
                        pass
                    else:
                        if len(events) == len(values):
                            return events, []
        return _one_by_one(msgs, step, self._value)

    def _value(self, m: Message) -> T:
        value = m.value()
        if value is None:
            if self._null is None:
                raise NoValueError("the message has no value (a tombstone)")
            value = self._null
        return self._decode(value)


class ParseConverter(Generic[T]):
    """Each message's value, as UTF-8 text, given to a ``parse`` function."""

    def __init__(self, parse: Callable[[str], T]) -> None:
        self._parse = parse

    def __call__(self, msgs: list[Message], step: str) -> tuple[list[T], list[DeadLetter]]:
        return _one_by_one(msgs, step, self._value)

    def _value(self, m: Message) -> T:
        value = m.value()
        if value is None:
            raise NoValueError("the message has no value (a tombstone)")
        return self._parse(value.decode("utf-8"))


class MessageConverter(Generic[K, V]):
    """Whole messages: typed key and value, headers, timestamp and coordinates."""

    def __init__(self, key_type: type[K], value_type: type[V]) -> None:
        self._key = decoder_for(key_type)
        self._value = ValueConverter(value_type)._value

    def __call__(
        self, msgs: list[Message], step: str
    ) -> tuple[list[KafkaMessage[K, V]], list[DeadLetter]]:
        return _one_by_one(msgs, step, self._message)

    def _message(self, m: Message) -> KafkaMessage[K, V]:
        raw_key = m.key()
        key = None
        if raw_key is not None:
            try:
                key = self._key(raw_key)
            except Exception as exc:
                raise KeyDecodeError(f"cannot decode the key {raw_key!r}: {exc}") from None
        kind, ms = m.timestamp()
        headers: Any = m.headers()
        return KafkaMessage(
            key=key,
            value=self._value(m),
            topic=m.topic() or "",
            partition=m.partition() or 0,
            offset=m.offset() or 0,
            timestamp=None if kind == 0 else datetime.fromtimestamp(ms / 1000, UTC),
            headers=tuple(headers) if headers else (),
        )
