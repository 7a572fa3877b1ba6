"""The test broker: MockKafkaBroker, the pytest fixture, ``flowlib dev-broker``, and kcat."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from flowlib.testing.kafka_broker import MockKafkaBroker, _read_line
from tests.examples.cli_helpers import ROOT, flowlib_command
from tests.flowlib.connectors.test_kafka_helpers import consume, new_topic, produce


def test_a_broker_in_a_child_process_is_reachable_then_gone() -> None:
    broker = MockKafkaBroker(brokers=3)
    address = broker.start()
    assert len(address.split(",")) == 3
    topic = new_topic()
    produce(address, topic, [b"hello"], partition=3)
    assert [g.value for g in consume(address, topic)] == [b"hello"]
    proc = broker._proc
    broker.stop()
    assert proc is not None and proc.returncode is not None
    broker.stop()  # idempotent


def test_the_pytest_fixture_yields_a_bootstrap_address(kafka_broker: str) -> None:
    """``kafka_broker`` reaches every test suite through flowlib's pytest plugin."""
    topic = new_topic()
    produce(kafka_broker, topic, [b"x", b"y"], partition=0)
    assert [g.value for g in consume(kafka_broker, topic)] == [b"x", b"y"]


def test_flowlib_dev_broker_prints_its_address_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen([*flowlib_command(), "dev-broker"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        address = _read_line(proc.stdout, 60).strip()
        host, _, port = address.partition(":")
        assert host == "127.0.0.1" and port.isdigit(), address
        topic = new_topic()
        produce(address, topic, [b"ping"], partition=0)
        assert [g.value for g in consume(address, topic)] == [b"ping"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_flowlib_dev_broker_rejects_stray_arguments() -> None:
    proc = subprocess.run([*flowlib_command(), "dev-broker", "extra"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "usage: flowlib dev-broker" in proc.stderr


KCAT = shutil.which("kcat") or shutil.which("kafkacat")


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (apt-get install kcat)")
def test_kcat_produces_the_input_and_consumes_the_results(tmp_path: Path) -> None:
    """Any Kafka client works with the broker: kcat writes the raw log lines, the example flow
    counts them, kcat reads the counts back."""
    assert KCAT is not None
    with MockKafkaBroker() as broker:
        address = broker.bootstrap
        assert address is not None
        lines = (ROOT / "examples/data/loghub/Apache/Apache_2k.log").read_bytes()
        subprocess.run([KCAT, "-P", "-b", address, "-t", "apache-logs", "-z", "lz4"],
                       input=lines, check=True, timeout=60)
        run = subprocess.run(
            [*flowlib_command(), "run", "examples/log_agg_kafka.py", "--", "--brokers", address],
            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert run.returncode == 0, run.stderr
        out = subprocess.run(
            [KCAT, "-C", "-b", address, "-t", "log-counts", "-e", "-q", "-f", "%k\t%s\n",
             "-X", "isolation.level=read_committed"],
            capture_output=True, check=True, timeout=60,
        ).stdout.decode().splitlines()
    counts = {k: orjson.loads(v)["count"] for k, v in (line.split("\t", 1) for line in out)}
    assert sum(counts.values()) == 2000
    assert counts["notice/E2"] == 569
