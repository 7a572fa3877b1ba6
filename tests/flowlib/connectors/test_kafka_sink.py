"""KafkaSink and KafkaDeadLetterSink against the mock broker, through the real Kafka protocol."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, assert_type

import orjson
import pytest
from confluent_kafka import KafkaError

from flowlib import DeadLetter, Flow, ListSink, ListSource
from flowlib.connectors.kafka import (
    KafkaConnectorError,
    KafkaDeadLetterSink,
    KafkaDeliveryError,
    KafkaRecord,
    KafkaRetry,
    KafkaSink,
    KafkaSource,
    KafkaUnavailableError,
    ProducerLike,
)
from flowlib.engine import run
from flowlib.testing.kafka_broker import MockKafkaBroker
from tests.flowlib.connectors.test_kafka_fakes import FakeClients, FakeKafka, FakeProducer
from tests.flowlib.connectors.test_kafka_helpers import FAST, consume, new_topic, produce


@dataclass(frozen=True)
class Total:
    user: str
    amount: float


def totals(n: int) -> list[Total]:
    return [Total(f"u{i % 5}", i / 2) for i in range(n)]


def write(items: list[Total], sink: KafkaSink[Total]) -> None:
    flow = Flow("write", dead_letters=ListSink(DeadLetter))
    flow.source(ListSource(items, Total, batch_size=100)).sink(sink)
    run(flow)


@pytest.mark.parametrize("exactly_once", [False, True])
def test_typed_values_with_keys(kafka_broker: str, exactly_once: bool) -> None:
    topic = new_topic()
    sink = KafkaSink(topic, Total, brokers=kafka_broker, key=lambda t: t.user,
                     exactly_once=exactly_once, transactional_id=f"tx-{topic}")
    write(totals(1000), sink)
    got = consume(kafka_broker, topic)
    assert sorted(orjson.loads(g.value or b"")["amount"] for g in got) == [i / 2
                                                                          for i in range(1000)]
    partition_of = {g.key: g.partition for g in got}
    assert len(partition_of) == 5  # the key is the user, as UTF-8
    assert all(partition_of[g.key] == g.partition for g in got)  # one partition per key
    assert {g.key for g in got} == {f"u{i}".encode() for i in range(5)}
    assert orjson.loads(got[0].value or b"").keys() == {"user", "amount"}


def test_sink_types_are_inferred() -> None:
    plain = KafkaSink("t", Total, brokers="localhost:1", key=lambda t: t.user)
    assert_type(plain, KafkaSink[Total])
    records = KafkaSink.records("t", Total, key_type=int, brokers="localhost:1")
    assert_type(records, KafkaSink[KafkaRecord[int, Total]])
    raw_keys = KafkaSink.records("t", str, brokers="localhost:1")
    assert_type(raw_keys, KafkaSink[KafkaRecord[bytes, str]])
    assert_type(KafkaDeadLetterSink("d", brokers="localhost:1"), KafkaDeadLetterSink)
    flow = Flow("types", dead_letters=KafkaDeadLetterSink("d", brokers="localhost:1"))
    flow.source(ListSource(totals(1), Total)).sink(plain)  # mypy checks Stream[Total] fits


def test_records_carry_headers_timestamps_and_partitions(kafka_broker: str) -> None:
    topic = new_topic()
    ts = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    records = [
        KafkaRecord(Total("a", 1.0), key=7, headers=[("source", b"test")], timestamp=ts,
                    partition=2),
        KafkaRecord(Total("b", 2.0), partition=2),
    ]
    flow = Flow("write", dead_letters=ListSink(DeadLetter))
    sink = KafkaSink.records(topic, Total, key_type=int, brokers=kafka_broker)
    flow.source(ListSource(records, KafkaRecord[int, Total])).sink(sink)
    run(flow)
    got = consume(kafka_broker, topic)
    assert [(g.partition, g.key, g.headers) for g in got] == [
        (2, b"7", (("source", b"test"),)), (2, None, ())]
    assert got[0].timestamp == int(ts.timestamp() * 1000)


def test_the_transactional_protocol_runs_against_a_real_broker(kafka_broker: str) -> None:
    """init/begin/send-offsets/commit go through the Kafka protocol: the records are there,
    each once, for a read_committed consumer. (Aborts are checked with a fake Kafka: the mock
    broker does not hide aborted records.)"""
    topic = new_topic()
    sink = KafkaSink(topic, Total, brokers=kafka_broker, exactly_once=True,
                     transactional_id=f"tx-{topic}")
    flow = Flow("write", dead_letters=ListSink(DeadLetter))
    slow = ListSource(totals(300), Total, batch_size=10)

    def pause(t: Total) -> Total:
        time.sleep(0.002)  # several checkpoints, hence several transactions
        return t

    flow.source(slow).map(pause).sink(sink)
    run(flow, snapshot_interval=timedelta(seconds=0.05))
    got = consume(kafka_broker, topic)
    assert sorted(orjson.loads(g.value or b"")["amount"] for g in got) == [i / 2
                                                                          for i in range(300)]
    # Each commit leaves a transaction marker in the log: a gap in the offsets read.
    gaps = sum(1 for a, b in itertools.pairwise(got)
               if a.partition == b.partition and b.offset != a.offset + 1)
    assert gaps >= 2


def test_dead_letters_go_to_a_topic_with_their_bytes_and_origin(kafka_broker: str) -> None:
    source_topic, dead_topic = new_topic("in"), new_topic("dead")
    good = orjson.dumps({"user": "a", "amount": 1.5})
    where = produce(kafka_broker, source_topic, [good, b"\x00\xffnot json", good, b"[1]"],
                    partition=1)
    for exactly_once in (False, True):
        topic = f"{dead_topic}-{exactly_once}"
        flow = Flow("dlq", dead_letters=KafkaDeadLetterSink(
            topic, brokers=kafka_broker, exactly_once=exactly_once,
            transactional_id=f"tx-{topic}"))
        source = KafkaSource(source_topic, Total, brokers=kafka_broker, stop_at_end=True)
        events = flow.source(source, name="read")

        def reject_a(t: Total) -> Total:
            if t.user == "a" and t.amount > 1:
                raise ValueError("no user a")
            return t

        events.map(reject_a, name="check").sink(ListSink(Total))
        run(flow)
        got = consume(kafka_broker, topic)
        from_source = sorted((g for g in got if dict(g.headers)["flowlib.step"] == b"read"),
                             key=lambda g: int(dict(g.headers)["flowlib.source.offset"] or b""))
        assert [g.value for g in from_source] == [b"\x00\xffnot json", b"[1]"]
        headers = dict(from_source[0].headers)
        assert headers["flowlib.error_type"] == b"DecodeError"
        assert headers["flowlib.source.topic"] == source_topic.encode()
        assert headers["flowlib.source.partition"] == b"1"
        assert headers["flowlib.source.offset"] == str(where[1][1]).encode()
        assert headers["flowlib.origin"] == f"{source_topic}/1@{where[1][1]}".encode()
        assert datetime.fromisoformat((headers["flowlib.time"] or b"").decode()).tzinfo
        from_map = [g for g in got if dict(g.headers)["flowlib.step"] == b"check"]
        assert len(from_map) == 2  # a later step's dead letter: the event, as JSON
        assert orjson.loads(from_map[0].value or b"") == {"user": "a", "amount": 1.5}
        assert dict(from_map[0].headers)["flowlib.error"] == b"no user a"
        assert "flowlib.source.topic" not in dict(from_map[0].headers)


def test_unreachable_brokers_at_start_fail_after_bounded_retries() -> None:
    sink = KafkaSink("t", Total, brokers="127.0.0.1:9", retry=FAST)
    with pytest.raises(KafkaUnavailableError, match=r"reach topic 't'.*3 attempts"):
        write(totals(3), sink)


class MissingTopic(FakeProducer):
    """Metadata as a cluster that does not create topics on first use answers."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
        return SimpleNamespace(topics={topic: SimpleNamespace(error=error, partitions={})})


class NoTopicClients(FakeClients):
    def producer(self, config: dict[str, Any]) -> ProducerLike:
        return MissingTopic(self.kafka, config)


@pytest.mark.parametrize("exactly_once", [False, True])
def test_a_missing_topic_is_named(exactly_once: bool) -> None:
    sink = KafkaSink("nowhere", Total, brokers="fake:9092", exactly_once=exactly_once,
                     clients=NoTopicClients(FakeKafka()))
    with pytest.raises(KafkaConnectorError, match=r"topic 'nowhere' not found .* create it"):
        sink.open("nowhere", None)


def test_records_lost_with_the_brokers_are_reported() -> None:
    broker = MockKafkaBroker()
    address = broker.start()
    topic = new_topic()
    produce(address, topic, [b"x"], partition=0)  # the topic exists, the sink connects

    def lose_the_broker(t: Total) -> Total:
        if t.amount == 100:
            broker.stop()
        return t

    # Records not acknowledged within the retry budget fail the next checkpoint.
    sink = KafkaSink(topic, Total, brokers=address, retry=KafkaRetry(attempts=1, timeout=1.0))
    flow = Flow("write", dead_letters=ListSink(DeadLetter))
    flow.source(ListSource(totals(400), Total, batch_size=50)).map(lose_the_broker).sink(sink)
    started = time.monotonic()
    with pytest.raises(KafkaDeliveryError, match=f"not written to Kafka topic '{topic}'"):
        run(flow)
    assert time.monotonic() - started < 30
