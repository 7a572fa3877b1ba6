"""Exactly-once delivery: one Kafka transaction per checkpoint epoch, committed once the
checkpoint that covers it is saved.

Why not commit when the engine takes the sink's position (the end of an epoch)? The checkpoint
is saved only afterwards; a crash in between would leave the epoch's results committed in Kafka
while the resumed run, starting from the previous checkpoint, writes them again. So:

1. records of an epoch are encoded into a buffer;
2. at the epoch's end (:meth:`position`) the buffer becomes *pending* and is part of the
   position, hence of the checkpoint;
3. the engine starts a new epoch only once that checkpoint is saved (bytewax lets sources read
   the next epoch only after the previous one's recovery data is written), so the next call
   into the sink (a write, a position, or close at the end of the run) commits the pending
   records in one transaction. Along with them, the transaction commits offset ``n`` (its
   sequence number) for a marker group (``flowlib.exactly-once.<transactional id>``): the
   marker commits if and only if the records do.
4. on resume, the checkpoint names its pending transaction ``n``; the marker tells whether it
   committed before the crash. If not, its records are sent again and committed.

A crash at any moment therefore leaves each result committed exactly once. Starting the
producer (``init_transactions``) fences any older instance with the same transactional id and
aborts its open transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from typing_extensions import override

from flowlib.connectors.base import SinkPartition
from flowlib.connectors.kafka._client import consumer_config, producer_config, retry_call
from flowlib.connectors.kafka._errors import KafkaConnectorError, KafkaUnavailableError
from flowlib.connectors.kafka._produce import Deliveries, Rec, produce_all
from flowlib.connectors.kafka._retry import retrying
from flowlib.connectors.kafka._sink import SinkSettings, reach_topic

__all__ = ["Position", "TransactionalWriter", "marker_group"]

Position = tuple[int, int | None, tuple[Rec, ...]]
"""``(last committed sequence, pending sequence or None, pending records)``."""


def marker_group(transactional_id: str) -> str:
    """The consumer group whose committed offset is the sequence of the last transaction."""
    return f"flowlib.exactly-once.{transactional_id}"


_PRODUCER_ONLY = ("linger.ms", "batch.", "compression.", "acks", "enable.idempotence",
                  "message.", "delivery.", "queue.buffering.", "transaction", "retries",
                  "max.in.flight", "partitioner", "sticky.", "request.required.acks")


def _shared_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The sink's settings that also apply to the consumer reading the marker (security,
    timeouts...): producer-only ones would only draw librdkafka warnings."""
    return {k: v for k, v in config.items() if not k.startswith(_PRODUCER_ONLY)}


def _kafka_error(exc: Exception) -> Any:
    return exc.args[0] if exc.args else None


def _flag(exc: Exception, name: str) -> bool:
    check = getattr(_kafka_error(exc), name, None)
    return bool(check()) if callable(check) else False


def _retriable(exc: Exception) -> bool:
    """Worth repeating the same call: not fatal, and the transaction needs no abort."""
    from confluent_kafka import KafkaException

    return (isinstance(exc, KafkaException) and _flag(exc, "retriable")
            and not _flag(exc, "fatal") and not _flag(exc, "txn_requires_abort"))


class TransactionalWriter(SinkPartition[Any]):
    """One sink partition with its own transactional producer (see the module docstring)."""

    def __init__(self, s: SinkSettings, resume: Position | None) -> None:
        from confluent_kafka import TopicPartition

        assert s.transactional_id is not None
        self._s = s
        self._tid = s.transactional_id
        self._deliveries = Deliveries(s.topic)
        self._producer = s.clients.producer(producer_config(
            s.brokers, s.retry, s.config, **{"transactional.id": self._tid},
            **self._deliveries.settings(),
        ))
        self._offsets = s.clients.consumer(
            consumer_config(s.brokers, _shared_settings(s.config),
                            **{"group.id": marker_group(self._tid)})
        )
        self._marker_tp = TopicPartition(s.topic, 0)
        self._failed = False
        self._buffer: list[Rec] = []
        self._pending: tuple[Rec, ...] = ()
        self._pending_seq: int | None = None
        reach_topic(self._producer, s)
        # Fences older producers with this id and settles their open transaction.
        retry_call(f"start transactions for topic {s.topic!r}", self._producer.init_transactions,
                   s.retry, s.brokers)
        self._group = self._offsets.consumer_group_metadata()
        committed = self._committed()
        if resume is None:
            self._seq = committed
            return
        seq, pending_seq, pending = resume
        self._seq = max(seq, committed)
        if pending_seq is not None and committed < pending_seq:
            # The checkpoint we resume from holds records whose transaction never committed.
            self._pending, self._pending_seq = tuple(pending), pending_seq
            self._commit_pending()

    @override
    def write_batch(self, items: Sequence[Any]) -> None:
        if self._pending_seq is not None:
            self._commit_pending()  # a new epoch: the previous one's checkpoint is saved
        self._buffer += self._s.encode(items)

    @override
    def position(self) -> Position:
        if self._pending_seq is not None:
            self._commit_pending()
        if self._buffer:
            self._pending, self._pending_seq = tuple(self._buffer), self._seq + 1
            self._buffer = []
        return (self._seq, self._pending_seq, self._pending)

    @override
    def close(self) -> None:
        try:
            # Normal end: everything written was covered by the last position, whose checkpoint
            # the engine saved before closing. After a failure there may be unpositioned
            # records: then nothing is committed, the resumed run takes over.
            if not self._failed and not self._buffer and self._pending_seq is not None:
                self._commit_pending()
        finally:
            self._offsets.close()

    def _commit_pending(self) -> None:
        seq = self._pending_seq
        assert seq is not None
        started = time.monotonic()
        last = ""
        for delay in [0.0, *self._s.retry.delays()]:
            time.sleep(delay)
            try:
                self._transaction(seq, self._pending)
            except KafkaConnectorError:
                self._failed = True
                raise
            except Exception as exc:
                if not _flag(exc, "txn_requires_abort"):
                    self._failed = True
                    if _flag(exc, "fatal"):
                        msg = (
                            f"Kafka transactional producer {self._tid!r} failed: {exc}. Another "
                            "producer with this transactional id (a second run of the flow?) "
                            "fences this one; give each sink its own transactional_id"
                        )
                        raise KafkaConnectorError(msg) from None
                    msg = f"Kafka transaction {seq} of {self._tid!r} failed: {exc}"
                    raise KafkaConnectorError(msg) from None
                refused = self._deliveries.reset()
                last = f"{exc}" + (f" (records refused: {refused})" if refused else "")
                self._call("abort a failed transaction", self._producer.abort_transaction)
            else:
                self._seq, self._pending, self._pending_seq = seq, (), None
                return
        self._failed = True
        msg = (
            f"Kafka topic {self._s.topic!r}: transaction {seq} of {self._tid!r} failed "
            f"{self._s.retry.attempts} times over {time.monotonic() - started:.1f} s: {last}"
        )
        raise KafkaUnavailableError(msg) from None

    def _transaction(self, seq: int, records: Sequence[Rec]) -> None:
        from confluent_kafka import TopicPartition

        p = self._producer
        self._deliveries.reset()
        p.begin_transaction()
        produce_all(p, self._s.topic, records)
        marker = TopicPartition(self._s.topic, 0, seq, f"flowlib transaction {seq}")
        self._call("add the commit marker",
                   lambda timeout: p.send_offsets_to_transaction([marker], self._group, timeout))
        # A refused record makes the commit fail (abortable), so a commit that returns covers
        # every record: delivery failures need no separate check here.
        self._call("commit a transaction", p.commit_transaction)

    def _committed(self) -> int:
        """Sequence number of the last transaction committed with this transactional id."""
        tps = retry_call(
            f"read the transactions committed to topic {self._s.topic!r}",
            lambda timeout: self._offsets.committed([self._marker_tp], timeout=timeout),
            self._s.retry, self._s.brokers,
        )
        tp = tps[0]
        if tp.error is not None and tp.error.name() != "UNKNOWN_TOPIC_OR_PART":
            msg = f"Kafka: cannot read group {marker_group(self._tid)!r}: {tp.error}"
            raise KafkaConnectorError(msg)
        return max(tp.offset, 0) if tp.error is None else 0

    def _call(self, what: str, attempt: Callable[[float], Any]) -> Any:
        # Errors that need an abort (or are fatal) come out as themselves: see _commit_pending.
        return retrying(f"{what} for topic {self._s.topic!r}", attempt, self._s.retry,
                        self._s.brokers, _retriable, wrap=False)
