"""The exactly-once sink's logic at the producer boundary: what is committed when, and what a
resume after a crash at each point commits, with faults injected by a fake Kafka.

A crash is simulated by dropping a writer without closing it and opening a new one from the
last checkpointed position, as the engine does on resume; at the end, real ``kill -9`` crashes of
a flow run by the CLI, resumed from its recovery directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from flowlib import DeadLetter, Flow, ListSink
from flowlib.connectors.base import SinkPartition
from flowlib.connectors.kafka import (
    KafkaConnectorError,
    KafkaDeliveryError,
    KafkaRetry,
    KafkaSink,
    KafkaSource,
    KafkaUnavailableError,
)
from flowlib.testing.kafka_broker import MockKafkaBroker
from tests.examples.cli_helpers import ROOT, flowlib_command
from tests.flowlib.connectors.test_kafka_fakes import (
    FakeClients,
    FakeKafka,
    abortable,
    fatal,
    retriable,
)
from tests.flowlib.connectors.test_kafka_helpers import new_topic, produce

FAST = KafkaRetry(attempts=3, first_delay=0.0, max_delay=0.0, timeout=0.1)
MARKER = "flowlib.exactly-once.flowlib.out"


def sink(kafka: FakeKafka, *, exactly_once: bool = True) -> KafkaSink[str]:
    return KafkaSink("out", str, brokers="fake:9092", exactly_once=exactly_once, retry=FAST,
                     clients=FakeClients(kafka))


def writer(kafka: FakeKafka, resume: object = None) -> SinkPartition[str]:
    return sink(kafka).open("out", resume)


def out(kafka: FakeKafka) -> list[str]:
    return [v.decode() for v in kafka.values("out")]


def test_an_epoch_commits_once_its_checkpoint_is_saved() -> None:
    kafka = FakeKafka()
    w = writer(kafka)
    w.write_batch(["a", "b"])
    w.write_batch(["c"])
    assert out(kafka) == []  # nothing before the epoch ends
    w.position()
    assert out(kafka) == []  # nor before its checkpoint is saved
    w.write_batch(["d"])  # a new epoch: the engine saved the previous checkpoint
    assert out(kafka) == ["a", "b", "c"]
    assert kafka.offset(MARKER) == 1
    w.position()
    w.close()  # the end of the run commits the last epoch
    assert out(kafka) == ["a", "b", "c", "d"]
    assert kafka.offset(MARKER) == 2


def test_each_transaction_holds_one_epoch_and_its_marker() -> None:
    kafka = FakeKafka()
    w = writer(kafka)
    w.write_batch(["a"])
    w.position()
    w.write_batch(["b"])
    w.position()
    w.write_batch(["c"])
    w.position()
    w.close()
    calls = [c for c in kafka.calls if c != "list_topics"]
    txn = ["begin_transaction", "send_offsets_to_transaction", "commit_transaction"]
    assert calls == ["init_transactions", *txn * 3]
    assert out(kafka) == ["a", "b", "c"]


def test_crash_before_the_commit_resends_the_checkpointed_epoch() -> None:
    kafka = FakeKafka()
    w = writer(kafka)
    w.write_batch(["a", "b"])
    checkpoint = w.position()
    # crash: the checkpoint was saved, the transaction never committed
    writer(kafka, checkpoint)
    assert out(kafka) == ["a", "b"]
    assert kafka.offset(MARKER) == 1


def test_crash_after_the_commit_does_not_resend() -> None:
    kafka = FakeKafka()
    w = writer(kafka)
    w.write_batch(["a"])
    checkpoint = w.position()
    w.write_batch(["b"])  # commits "a"
    # crash before the next checkpoint: the resumed run starts from `checkpoint` and the
    # engine replays the input after it, so "b" comes again
    w2 = writer(kafka, checkpoint)
    assert out(kafka) == ["a"]
    w2.write_batch(["b"])
    w2.position()
    w2.close()
    assert out(kafka) == ["a", "b"]


def test_crash_inside_an_epoch_loses_nothing_and_duplicates_nothing() -> None:
    kafka = FakeKafka()
    w = writer(kafka)
    w.write_batch(["a"])
    checkpoint = w.position()
    w.write_batch(["b"])
    w.position()  # this checkpoint is never saved: crash
    w2 = writer(kafka, checkpoint)
    w2.write_batch(["b"])
    w2.position()
    w2.close()
    assert out(kafka) == ["a", "b"]


def test_repeated_crashes_at_every_step_give_each_record_once() -> None:
    """Crash after every step of a three-epoch run, resume from the last saved checkpoint and
    replay the input after it: the committed output is the same every time."""
    epochs = [["a", "b"], ["c"], ["d", "e"]]
    for crash_at in range(1, 8):
        kafka = FakeKafka()
        saved: tuple[int, object] = (0, None)  # (epochs done, checkpoint)
        steps = 0
        done = False
        while not done:
            w = writer(kafka, saved[1])
            crashed = False
            for i in range(saved[0], len(epochs)):
                w.write_batch(epochs[i])
                steps += 1
                if steps == crash_at:
                    crashed = True
                    break
                pos = w.position()
                steps += 1
                if steps == crash_at:
                    crashed = True  # the position was taken, its checkpoint not saved
                    break
                saved = (i + 1, pos)
            if not crashed:
                w.close()
                done = True
        assert out(kafka) == ["a", "b", "c", "d", "e"], crash_at


def test_an_aborted_transaction_is_sent_again() -> None:
    kafka = FakeKafka()
    kafka.faults.pending.append(("commit_transaction", abortable))
    w = writer(kafka)
    w.write_batch(["a", "b"])
    w.position()
    w.close()
    assert out(kafka) == ["a", "b"]
    assert "abort_transaction" in kafka.calls


def test_a_retriable_commit_error_retries_the_commit() -> None:
    kafka = FakeKafka()
    kafka.faults.pending += [("commit_transaction", retriable), ("commit_transaction", retriable)]
    w = writer(kafka)
    w.write_batch(["a"])
    w.position()
    w.close()
    assert out(kafka) == ["a"]
    assert kafka.calls.count("commit_transaction") == 3
    assert "abort_transaction" not in kafka.calls


def test_refused_records_abort_the_transaction_and_are_sent_again() -> None:
    kafka = FakeKafka()
    w = writer(kafka)
    w.write_batch(["a", "b", "c"])
    w.position()
    kafka.faults.undeliverable = 1  # the broker refuses one record of the first attempt
    w.close()
    assert out(kafka) == ["a", "b", "c"]


def test_persistent_failures_end_in_a_clear_error_and_nothing_is_committed() -> None:
    kafka = FakeKafka()
    kafka.faults.pending += [("commit_transaction", abortable)] * FAST.attempts
    w = writer(kafka)
    w.write_batch(["a"])
    w.position()
    with pytest.raises(KafkaUnavailableError, match=r"transaction 1 .* failed 3 times"):
        w.write_batch(["b"])
    w.close()  # after a failure, close must not commit
    assert out(kafka) == []


def test_refused_records_are_reported() -> None:
    kafka = FakeKafka()
    kafka.faults.undeliverable = 100
    w = writer(kafka)
    w.write_batch(["a"])
    w.position()
    with pytest.raises(KafkaUnavailableError, match=r"records refused: .*injected refusal"):
        w.close()
    assert out(kafka) == []


def test_a_fenced_producer_fails_with_a_clear_error() -> None:
    kafka = FakeKafka()
    old = writer(kafka)
    old.write_batch(["a"])
    old.position()
    writer(kafka)  # a second instance with the same transactional id fences the first
    with pytest.raises(KafkaConnectorError, match="give each sink its own transactional_id"):
        old.write_batch(["b"])
    assert out(kafka) == []


def test_a_fatal_producer_error_is_not_retried() -> None:
    kafka = FakeKafka()
    kafka.faults.pending.append(("commit_transaction", fatal))
    w = writer(kafka)
    w.write_batch(["a"])
    w.position()
    with pytest.raises(KafkaConnectorError, match="injected: producer fenced"):
        w.close()
    assert kafka.calls.count("commit_transaction") == 1
    assert out(kafka) == []


def test_close_after_a_failure_mid_epoch_commits_nothing() -> None:
    kafka = FakeKafka()
    w = writer(kafka)
    w.write_batch(["a"])
    w.position()
    w.write_batch(["b"])  # commits "a"
    w.write_batch(["c"])
    w.close()  # a failing run: "b" and "c" were never covered by a position
    assert out(kafka) == ["a"]


def test_a_fresh_run_counts_on_from_earlier_transactions() -> None:
    kafka = FakeKafka()
    w = writer(kafka)
    for batch in (["a"], ["b"], ["c"]):
        w.write_batch(batch)
        w.position()
    w.close()
    assert kafka.offset(MARKER) == 3
    w = writer(kafka)  # a new run, no checkpoint: it appends
    w.write_batch(["d"])
    checkpoint = w.position()
    writer(kafka, checkpoint)  # crash before the commit, then resume
    assert out(kafka) == ["a", "b", "c", "d"]
    assert kafka.offset(MARKER) == 4


def test_unreachable_brokers_at_start() -> None:
    kafka = FakeKafka()
    kafka.faults.pending += [("init_transactions", retriable)] * FAST.attempts
    with pytest.raises(KafkaUnavailableError, match=r"cannot start transactions .* 3 attempts"):
        writer(kafka)


def test_at_least_once_sink_reports_refused_records_at_the_checkpoint() -> None:
    kafka = FakeKafka()
    w = sink(kafka, exactly_once=False).open("out", None)
    w.write_batch(["a", "b"])
    kafka.faults.undeliverable = 1
    # refused: reported as soon as the delivery report comes, at the latest by the checkpoint
    with pytest.raises(KafkaDeliveryError, match=r"1 record.* not written to Kafka topic 'out'"):
        w.write_batch(["c"])
        w.position()
    assert out(kafka) == ["a", "b"]


def crash_flow() -> Flow:
    """Kafka topic -> slow map -> exactly-once sink over a fake Kafka kept in SQLite: the flow
    that ``flowlib run THIS_FILE:crash_flow`` runs for the kill -9 test below."""
    brokers, topic, db = (os.environ[f"FLOWLIB_TEST_KAFKA_{k}"] for k in ("BROKERS", "TOPIC", "DB"))
    crash = os.environ.get("FLOWLIB_TEST_KAFKA_CRASH_AFTER")

    def slow(n: int) -> int:
        time.sleep(0.00005)  # long enough a run to be killed in the middle
        return n

    flow = Flow("crash", dead_letters=ListSink(DeadLetter))
    # Small batches: the input is read a batch at a time between the map's turns, over many
    # checkpoint epochs (with one batch per partition, all of it would be in the first epoch).
    source = KafkaSource(topic, int, brokers=brokers, stop_at_end=True, batch_size=200)
    sink = KafkaSink("out", int, brokers="fake:9092", exactly_once=True,
                     clients=FakeClients(FakeKafka(Path(db), crash_after_commits=(
                         int(crash) if crash else None))))
    flow.source(source, name="read").map(slow).sink(sink)
    return flow


def test_kill_9_at_any_time_and_resume_commit_every_result_exactly_once(
    tmp_path: Path,
) -> None:
    """Crashes right after a commit (before the checkpoint that follows is saved), at a random
    moment, then once more right after a commit of the resumed run; the last run completes.
    Every result is committed exactly once."""
    n = 40_000
    db = tmp_path / "kafka.sqlite"
    kafka = FakeKafka(db)
    with MockKafkaBroker() as broker:
        assert broker.bootstrap is not None
        topic = new_topic()
        for p in range(4):
            produce(broker.bootstrap, topic, [str(i).encode() for i in range(p, n, 4)],
                    partition=p)
        cmd = [*flowlib_command(), "run", f"{Path(__file__)}:crash_flow", "--recovery",
               str(tmp_path / "recovery"), "--snapshot-interval", "0.2"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOWLIB_TEST_KAFKA_BROKERS":
               broker.bootstrap, "FLOWLIB_TEST_KAFKA_TOPIC": topic, "FLOWLIB_TEST_KAFKA_DB":
               str(db)}
        for crash_after in (2, None, 1):
            before = len(kafka.values("out"))
            run_env = {**env, "FLOWLIB_TEST_KAFKA_CRASH_AFTER": str(crash_after or "")}
            proc = subprocess.Popen(cmd, cwd=ROOT, env=run_env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            if crash_after is None:  # killed from outside, once a transaction committed
                deadline = time.monotonic() + 120
                while len(kafka.values("out")) <= before:
                    assert time.monotonic() < deadline, "no transaction committed"
                    assert proc.poll() is None, "the run ended before it could be killed"
                    time.sleep(0.01)
                os.killpg(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=120) == -signal.SIGKILL, "the run ended before its crash"
        assert len(kafka.values("out")) < n
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr
    values = sorted(int(v) for v in kafka.values("out"))
    assert values == list(range(n))  # every result, once
