"""KafkaSource against the mock broker, through the real Kafka protocol."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, assert_type

import orjson
import pytest
from confluent_kafka import Producer

from flowlib import DeadLetter, Flow, ListSink, Stream
from flowlib.connectors.base import SourcePartition
from flowlib.connectors.kafka import (
    KafkaConnectorError,
    KafkaMessage,
    KafkaSource,
    KafkaUnavailableError,
)
from flowlib.engine import run
from flowlib.testing.kafka_broker import MockKafkaBroker
from tests.flowlib.connectors.test_kafka_helpers import FAST, new_topic, produce


@dataclass(frozen=True)
class Click:
    user: str
    page: int


def clicks(n: int) -> list[bytes]:
    return [orjson.dumps({"user": f"u{i % 7}", "page": i}) for i in range(n)]


def read_all(part: SourcePartition[Any], timeout: float = 20) -> list[Any]:
    """Every event of a bounded partition."""
    events: list[Any] = []
    deadline = time.monotonic() + timeout
    while (got := part.read_batch()) is not None:
        assert time.monotonic() < deadline
        events += got[0]
    return events


def run_to_list(source: KafkaSource[Any]) -> tuple[list[Any], list[DeadLetter]]:
    dead = ListSink(DeadLetter)
    flow = Flow("read", dead_letters=dead)
    out: ListSink[Any] = ListSink()
    flow.source(source, name="read").sink(out)
    run(flow)
    return out.items, dead.items


def test_typed_values_from_every_partition(kafka_broker: str) -> None:
    topic = new_topic()
    values = clicks(2000)
    for p in range(4):
        produce(kafka_broker, topic, values[p::4], partition=p)
    source = KafkaSource(topic, Click, brokers=kafka_broker, stop_at_end=True)
    assert source.partitions() == [f"{topic}/{p}" for p in range(4)]
    events, dead = run_to_list(source)
    assert sorted(e.page for e in events) == list(range(2000))
    assert isinstance(events[0], Click)
    assert dead == []


def test_bad_records_become_dead_letters_with_exact_bytes_and_origin(kafka_broker: str) -> None:
    topic = new_topic()
    bad = [b"not json", b'{"user": "u1", "page": "seven"}', b"\xff\xfe binary", b""]
    values = [*clicks(10), *bad, *clicks(5)]
    where = produce(kafka_broker, topic, values, partition=2)
    events, dead = run_to_list(KafkaSource(topic, Click, brokers=kafka_broker, stop_at_end=True))
    assert len(events) == 15  # the flow went on
    assert [d.raw for d in dead] == bad
    assert [d.origin for d in dead] == [f"{topic}/2@{o}" for _, o in where[10:14]]
    assert {d.step for d in dead} == {"read"}
    assert {d.error_type for d in dead} == {"DecodeError"}
    assert "$.page" in dead[1].error


def number(text: str) -> int:
    return int(text)


def test_several_topics_in_one_source(kafka_broker: str) -> None:
    first, second = new_topic(), new_topic()
    produce(kafka_broker, first, clicks(3), partition=0)
    produce(kafka_broker, second, clicks(5), partition=1)
    source = KafkaSource([first, second], Click, brokers=kafka_broker, stop_at_end=True,
                         batch_size=1)
    assert source.partitions() == [*(f"{first}/{p}" for p in range(4)),
                                   *(f"{second}/{p}" for p in range(4))]
    events, _ = run_to_list(source)
    assert sorted(c.page for c in events) == [0, 0, 1, 1, 2, 2, 3, 4]


def test_parse_function(kafka_broker: str) -> None:
    topic = new_topic()
    produce(kafka_broker, topic, [b"1", b"2", b"x", b"40", "é".encode()], partition=0)
    source = KafkaSource(topic, parse=number, brokers=kafka_broker, stop_at_end=True)
    assert source.item_type is int
    events, dead = run_to_list(source)
    assert sorted(events) == [1, 2, 40]
    assert [(d.raw, d.error_type) for d in dead] == [(b"x", "ValueError"),
                                                     ("é".encode(), "ValueError")]


def test_text_values_are_utf8_and_bytes_are_untouched(kafka_broker: str) -> None:
    topic = new_topic()
    produce(kafka_broker, topic, [b"plain line", "naïve".encode(), b"\xff"], partition=0)
    texts, dead = run_to_list(KafkaSource(topic, str, brokers=kafka_broker, stop_at_end=True))
    assert texts == ["plain line", "naïve"]
    assert [(d.raw, d.error_type) for d in dead] == [(b"\xff", "UnicodeDecodeError")]
    raw, _ = run_to_list(KafkaSource(topic, bytes, brokers=kafka_broker, stop_at_end=True))
    assert raw == [b"plain line", "naïve".encode(), b"\xff"]


def test_whole_messages_with_typed_keys_headers_and_timestamps(kafka_broker: str) -> None:
    topic = new_topic()
    ts = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    millis = int(ts.timestamp() * 1000)
    produce(kafka_broker, topic, clicks(3), keys=[b"k0", None, b"k2"], partition=1,
            headers=[("trace", b"abc"), ("empty", None)], timestamp=millis)
    produce(kafka_broker, topic, [None], keys=[b"tomb"], partition=1)  # a tombstone
    source = KafkaSource.messages(topic, Click, key_type=str, brokers=kafka_broker,
                                  stop_at_end=True)
    assert source.item_type == KafkaMessage[str, Click]
    msgs, dead = run_to_list(source)
    assert [m.key for m in msgs] == ["k0", None, "k2"]
    first: KafkaMessage[str, Click] = msgs[0]
    assert first.value == Click("u0", 0)
    assert (first.topic, first.partition, first.offset) == (topic, 1, 0)
    assert first.timestamp == ts
    assert first.headers == (("trace", b"abc"), ("empty", None))
    assert first.header("trace") == b"abc"
    # A tombstone decodes as JSON null: a dead letter unless the value type allows None.
    assert [(d.error_type, d.origin, d.raw) for d in dead] == [
        ("DecodeError", f"{topic}/1@3", b"")]
    assert "found null" in dead[0].error


def test_stream_types_are_inferred() -> None:
    flow = Flow("types")
    values = flow.source(KafkaSource("t", Click, brokers="localhost:1"))
    assert_type(values, Stream[Click])
    parsed = flow.source(KafkaSource("t", parse=number, brokers="localhost:1"))
    assert_type(parsed, Stream[int])
    raw = flow.source(KafkaSource.messages("t", Click, brokers="localhost:1"))
    assert_type(raw, Stream[KafkaMessage[bytes, Click]])
    keyed = flow.source(KafkaSource.messages("t", str, key_type=int, brokers="localhost:1"))
    assert_type(keyed, Stream[KafkaMessage[int, str]])


def test_a_partition_resumes_exactly_at_its_checkpointed_offset(kafka_broker: str) -> None:
    topic = new_topic()
    produce(kafka_broker, topic, clicks(5000), partition=0)
    source = KafkaSource(topic, Click, brokers=kafka_broker, batch_size=700)
    part = source.open(f"{topic}/0", "read", None)
    seen: list[Click] = []
    while len(seen) < 2000:
        got = part.read_batch()
        assert got is not None
        seen += got[0]
    checkpoint = part.position()
    part.close()
    assert checkpoint == (len(seen), None)  # the next offset; no end: unbounded
    produce(kafka_broker, topic, clicks(5000)[5000 - 1:], partition=0)  # one more record
    resumed = source.open(f"{topic}/0", "read", checkpoint)
    rest: list[Click] = []
    deadline = time.monotonic() + 20
    while len(seen) + len(rest) < 5001:
        assert time.monotonic() < deadline
        got = resumed.read_batch()
        assert got is not None
        rest += got[0]
    resumed.close()
    assert [c.page for c in seen + rest] == [*range(5000), 4999]


def test_stop_at_end_reads_what_was_there_at_the_start_even_after_a_resume(
    kafka_broker: str,
) -> None:
    topic = new_topic()
    produce(kafka_broker, topic, clicks(100), partition=3)
    source = KafkaSource(topic, Click, brokers=kafka_broker, stop_at_end=True, batch_size=30)
    part = source.open(f"{topic}/3", "read", None)
    first = part.read_batch()
    assert first is not None
    checkpoint = part.position()
    assert checkpoint == (30, 100)
    produce(kafka_broker, topic, clicks(10), partition=3)  # after the start: not read
    resumed = source.open(f"{topic}/3", "read", checkpoint)
    assert len(first[0]) + len(read_all(resumed)) == 100
    assert source.open(f"{topic}/0", "read", None).read_batch() is None  # empty partition


def test_transaction_markers_do_not_keep_a_bounded_read_waiting(kafka_broker: str) -> None:
    """Committed transactions end with a control record that is never delivered: the end of
    the partition is past the last message."""
    topic = new_topic()
    producer = Producer({"bootstrap.servers": kafka_broker, "transactional.id": new_topic("tx")})
    producer.init_transactions(10)
    for batch in range(3):
        producer.begin_transaction()
        for v in clicks(10):
            producer.produce(topic, v, partition=0)
        producer.commit_transaction(10)
        del batch
    source = KafkaSource(topic, Click, brokers=kafka_broker, stop_at_end=True)
    events = read_all(source.open(f"{topic}/0", "read", None))
    assert len(events) == 30


def test_a_checkpointed_offset_deleted_by_retention_fails_the_run(kafka_broker: str) -> None:
    topic = new_topic()
    # The mock broker keeps ~5 MB per partition: 6 MB in 1 KB records pushes out the first ones.
    big = [bytes([65 + i % 26]) * 1000 for i in range(6000)]
    producer = Producer({"bootstrap.servers": kafka_broker, "linger.ms": 5})
    for value in big:
        producer.produce(topic, value, partition=0)
    assert producer.flush(30) == 0
    part = KafkaSource(topic, bytes, brokers=kafka_broker).open(f"{topic}/0", "read", (0, None))
    deadline = time.monotonic() + 20
    with pytest.raises(KafkaConnectorError, match="offset 0 is no longer in the log"):
        while time.monotonic() < deadline:
            part.read_batch()
    part.close()


def test_start_latest_skips_what_is_already_there(kafka_broker: str) -> None:
    topic = new_topic()
    produce(kafka_broker, topic, clicks(50), partition=0)
    source = KafkaSource(topic, Click, brokers=kafka_broker, start="latest")
    part = source.open(f"{topic}/0", "read", None)
    assert part.position() == (50, None)
    produce(kafka_broker, topic, clicks(3), partition=0)
    got: list[Click] = []
    deadline = time.monotonic() + 20
    while len(got) < 3:
        assert time.monotonic() < deadline
        batch = part.read_batch()
        assert batch is not None
        got += batch[0]
    part.close()
    assert [c.page for c in got] == [0, 1, 2]


def test_a_missing_topic_is_named(kafka_broker: str) -> None:
    source = KafkaSource("no-such-topic", Click, brokers=kafka_broker, retry=FAST)
    with pytest.raises(KafkaConnectorError, match="topic 'no-such-topic' not found"):
        source.partitions()


def test_unreachable_brokers_at_start_fail_after_bounded_retries() -> None:
    flow = Flow("f", dead_letters=ListSink(DeadLetter))
    flow.source(KafkaSource("t", Click, brokers="127.0.0.1:9", retry=FAST)).sink(ListSink())
    started = time.monotonic()
    with pytest.raises(KafkaUnavailableError, match=r"127\.0\.0\.1:9 unavailable.*3 attempts"):
        run(flow)
    assert time.monotonic() - started < 30


def test_brokers_lost_mid_run_fail_after_bounded_retries() -> None:
    broker = MockKafkaBroker()
    address = broker.start()
    topic = new_topic()
    produce(address, topic, clicks(10), partition=0)

    def lose_the_broker(c: Click) -> Click:
        broker.stop()  # idempotent: the first event stops it
        return c

    flow = Flow("f", dead_letters=ListSink(DeadLetter))
    source = KafkaSource(topic, Click, brokers=address, retry=FAST)  # unbounded: waits for more
    flow.source(source).map(lose_the_broker).sink(ListSink())
    with pytest.raises(KafkaUnavailableError, match=f"{address} unavailable: cannot read {topic}"):
        run(flow)
