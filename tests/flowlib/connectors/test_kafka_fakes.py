"""A fake Kafka at the producer boundary, with Kafka's transactional semantics and injected faults.

librdkafka's mock broker speaks the transactional protocol but shows aborted records to
read_committed consumers and does not store transactional offset commits, so the exactly-once
logic is checked here instead: :class:`FakeKafka` keeps only *committed* records, commits a
transaction's records and its group offsets atomically, fences older producers of a
transactional id, and raises the errors librdkafka raises (abortable, retriable, fatal) when a
test asks for them. Its state is a SQLite file when given a path, so it survives ``kill -9`` of
a flow run in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from flowlib.connectors.kafka import OffsetsClient, ProducerLike

__all__ = ["Committed", "FakeClients", "FakeKafka", "abortable", "fatal", "retriable"]


def abortable(reason: str = "injected: transaction must be aborted") -> KafkaException:
    return KafkaException(KafkaError(KafkaError._STATE, reason, txn_requires_abort=True))


def retriable(reason: str = "injected: timed out") -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TIMED_OUT, reason, retriable=True))


def fatal(reason: str = "injected: producer fenced") -> KafkaException:
    return KafkaException(KafkaError(KafkaError._FENCED, reason, fatal=True))


@dataclass(frozen=True)
class Committed:
    topic: str
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass
class Faults:
    """Errors to raise, in order, the next times an operation is called."""

    pending: list[tuple[str, Callable[[], Exception]]] = field(default_factory=list)
    undeliverable: int = 0
    """How many of the next produced records the 'broker' refuses (delivery callback error)."""

    def take(self, op: str) -> Exception | None:
        for i, (name, make) in enumerate(self.pending):
            if name == op:
                del self.pending[i]
                return make()
        return None


class FakeKafka:
    """Committed records, group offsets and producer epochs; in memory or in a SQLite file."""

    def __init__(self, path: Path | None = None, *, crash_after_commits: int | None = None) -> None:
        self.crash_after_commits = crash_after_commits
        """Kill this process (SIGKILL) right after that many commits: a crash at the worst time,
        when Kafka has committed what no saved checkpoint covers yet."""
        self._commits = 0
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False,
                                   isolation_level=None)
        self._lock = threading.Lock()
        self.faults = Faults()
        self.calls: list[str] = []
        with self._lock:
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS records
                    (id INTEGER PRIMARY KEY, topic TEXT, value BLOB, key BLOB, headers TEXT);
                CREATE TABLE IF NOT EXISTS offsets (grp TEXT PRIMARY KEY, value INTEGER);
                CREATE TABLE IF NOT EXISTS epochs (tid TEXT PRIMARY KEY, value INTEGER);
            """)

    def records(self, topic: str) -> list[Committed]:
        """What a read_committed consumer of ``topic`` sees, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT topic, value, key, headers FROM records WHERE topic = ? ORDER BY id",
                (topic,),
            ).fetchall()
        return [Committed(t, v, k, tuple((h, bytes.fromhex(x)) for h, x in json.loads(hs)))
                for t, v, k, hs in rows]

    def values(self, topic: str) -> list[bytes]:
        return [r.value for r in self.records(topic)]

    def offset(self, group: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM offsets WHERE grp = ?", (group,)).fetchone()
        return None if row is None else int(row[0])

    def new_epoch(self, tid: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM epochs WHERE tid = ?", (tid,)).fetchone()
            epoch = 1 if row is None else int(row[0]) + 1
            self._db.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?)", (tid, epoch))
        return epoch

    def epoch(self, tid: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM epochs WHERE tid = ?", (tid,)).fetchone()
        return 0 if row is None else int(row[0])

    def commit(
        self,
        records: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]],
        offsets: list[tuple[str, int]],
    ) -> None:
        """Records and group offsets, all or nothing (one SQLite transaction)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO records (topic, value, key, headers) VALUES (?, ?, ?, ?)",
                [(t, v, k, json.dumps([(h, x.hex()) for h, x in hs])) for t, v, k, hs in records],
            )
            self._db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?)", offsets)
            self._db.execute("COMMIT")
        self._commits += 1
        if self._commits == self.crash_after_commits:
            os.kill(os.getpid(), signal.SIGKILL)


class FakeProducer:
    """Implements :class:`~flowlib.connectors.kafka.ProducerLike` over a :class:`FakeKafka`."""

    def __init__(self, kafka: FakeKafka, config: dict[str, Any]) -> None:
        self.kafka = kafka
        self.tid: str | None = config.get("transactional.id")
        self.on_delivery: Callable[[Any, Any], None] | None = config.get("on_delivery")
        self.epoch = 0
        self.txn: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] | None = None
        self.txn_offsets: list[tuple[str, int]] = []
        self.refused = 0  # records refused in the open transaction (or since the last flush)
        self.undelivered: list[Any] = []

    def _op(self, name: str) -> None:
        self.kafka.calls.append(name)
        fault = self.kafka.faults.take(name)
        if fault is not None:
            raise fault

    def _check_epoch(self) -> None:
        if self.tid is not None and self.kafka.epoch(self.tid) != self.epoch:
            raise fatal("fenced by a newer producer with the same transactional.id")

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        *,
        timestamp: int = 0,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        hs = [(h, x if isinstance(x, bytes) else str(x or "").encode()) for h, x in headers or []]
        rec = (topic, value or b"", key, hs)
        if self.kafka.faults.undeliverable > 0:
            self.kafka.faults.undeliverable -= 1
            self.refused += 1
            self.undelivered.append(rec)
            return
        if self.tid is None:
            self.kafka.commit([rec], [])
        else:
            if self.txn is None:
                raise KafkaException(KafkaError(KafkaError._STATE, "no open transaction"))
            self.txn.append(rec)

    def _report(self) -> None:
        for _ in self.undelivered:
            if self.on_delivery is not None:
                self.on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "injected refusal"),
                                 None)
        self.undelivered = []

    def poll(self, timeout: float = -1) -> int:
        self._report()
        return 0

    def flush(self, timeout: float = -1) -> int:
        self._op("flush")
        self._report()
        return 0

    def __len__(self) -> int:
        return 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        self._op("list_topics")
        return None

    def init_transactions(self, timeout: float = -1) -> None:
        self._op("init_transactions")
        assert self.tid is not None
        self.epoch = self.kafka.new_epoch(self.tid)  # fences older producers, aborts their txn

    def begin_transaction(self) -> None:
        self._op("begin_transaction")
        self._check_epoch()
        self.txn, self.txn_offsets, self.refused = [], [], 0

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        self._op("send_offsets_to_transaction")
        self._check_epoch()
        self.txn_offsets += [(str(group_metadata), tp.offset) for tp in positions]

    def commit_transaction(self, timeout: float = -1) -> None:
        self._op("commit_transaction")
        self._check_epoch()
        self._report()
        if self.refused:
            raise abortable(f"{self.refused} record(s) of the transaction were refused")
        assert self.txn is not None
        self.kafka.commit(self.txn, self.txn_offsets)
        self.txn, self.txn_offsets = None, []

    def abort_transaction(self, timeout: float = -1) -> None:
        self._op("abort_transaction")
        self.txn, self.txn_offsets, self.refused = None, [], 0


class FakeOffsets:
    """Implements :class:`~flowlib.connectors.kafka.OffsetsClient`: committed group offsets."""

    def __init__(self, kafka: FakeKafka, config: dict[str, Any]) -> None:
        self.kafka = kafka
        self.group = str(config["group.id"])

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        offset = self.kafka.offset(self.group)
        return [TopicPartition(tp.topic, tp.partition, -1001 if offset is None else offset)
                for tp in partitions]

    def consumer_group_metadata(self) -> Any:
        return self.group

    def close(self) -> None:
        pass


class FakeClients:
    """Implements :class:`~flowlib.connectors.kafka.KafkaClients` over one :class:`FakeKafka`."""

    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.producers: list[FakeProducer] = []

    def producer(self, config: dict[str, Any]) -> ProducerLike:
        p = FakeProducer(self.kafka, config)
        self.producers.append(p)
        return p

    def consumer(self, config: dict[str, Any]) -> OffsetsClient:
        return FakeOffsets(self.kafka, config)
