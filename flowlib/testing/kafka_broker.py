"""A Kafka broker for tests and local trials: librdkafka's built-in mock cluster.

No Java, no Docker: a ``confluent_kafka`` client started with ``test.mock.num.brokers`` runs an
in-memory cluster that speaks the Kafka protocol on loopback ports, reachable by any Kafka
client (``kcat``, other languages). :class:`MockKafkaBroker` keeps one in a child process;
``flowlib dev-broker`` runs one in the foreground; the ``kafka_broker`` pytest fixture yields the
bootstrap address of one per test session.

Limits of the mock: topics are created on first use with 4 partitions (producing to, or asking
metadata for, an unknown topic creates it; the admin API's CreateTopics is not supported); each
partition keeps only its last ~5 MB (older batches are dropped: compress large test data); it
accepts transactions but shows records of aborted transactions to ``read_committed`` consumers,
and does not store transactionally committed consumer offsets.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

__all__ = ["MockKafkaBroker", "kafka_broker", "main", "start_cluster"]


def start_cluster(brokers: int = 1) -> tuple[Any, str]:
    """Start a mock cluster in this process: ``(client that owns it, bootstrap address)``.

    The cluster lives as long as the returned client.
    """
    from confluent_kafka import Producer

    # log_level 0: the owner's own log lines (e.g. "mock cluster enabled") are noise here.
    owner = Producer({"test.mock.num.brokers": brokers, "log_level": 0})
    metadata = owner.list_topics(timeout=30)
    nodes = sorted(metadata.brokers.values(), key=lambda b: b.id)
    return owner, ",".join(f"{b.host}:{b.port}" for b in nodes)


class MockKafkaBroker:
    """A mock Kafka cluster in a child process; ``bootstrap`` is its address.

    The child exits when stopped, and also when this process dies (it watches its stdin).

    >>> broker = MockKafkaBroker(brokers=1)
    >>> broker.bootstrap is None
    True
    """

    def __init__(self, brokers: int = 1, *, timeout: float = 60.0) -> None:
        self.brokers = brokers
        self.timeout = timeout
        self.bootstrap: str | None = None
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start the cluster and return its bootstrap address (``host:port,...``)."""
        cmd = [sys.executable, "-m", "flowlib.testing.kafka_broker", "--brokers",
               str(self.brokers), "--until-stdin-closes"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self._proc = proc
        line = _read_line(proc.stdout, self.timeout)
        if not line:
            self.stop()
            err = proc.stderr.read() if proc.stderr else ""
            msg = f"the mock Kafka broker did not start within {self.timeout:.0f} s: {err}"
            raise RuntimeError(msg)
        self.bootstrap = line.strip()
        return self.bootstrap

    def stop(self) -> None:
        """Stop the cluster (all its data is gone)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> MockKafkaBroker:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _read_line(stream: IO[str] | None, timeout: float) -> str:
    """The first line of ``stream``, or ``""`` when none comes within ``timeout`` seconds."""
    if stream is None:
        return ""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else ""


def serve(
    brokers: int, *, until_stdin_closes: bool, out: IO[str], hint: IO[str] | None = None
) -> None:
    """Run a cluster, print its address on ``out`` (and a line for humans on ``hint``), and
    block: until stdin closes (child process) or until interrupted (Ctrl-C)."""
    owner, bootstrap = start_cluster(brokers)
    # A process started in the background inherits SIGINT ignored (POSIX shells do that):
    # restore Ctrl-C, and let SIGTERM stop it the same way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(bootstrap, file=out, flush=True)
    if hint is not None:
        print(f"mock Kafka cluster at {bootstrap}: topics are created on first use "
              "(4 partitions); Ctrl-C stops it and loses its data", file=hint, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        if until_stdin_closes:
            sys.stdin.read()  # returns at EOF: the parent stopped us or died
        else:
            while True:
                time.sleep(3600)
    del owner  # the cluster ends with the client that owns it


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowlib.testing.kafka_broker",
                                description="Run a mock Kafka cluster; print its address.")
    p.add_argument("--brokers", type=int, default=1, help="number of brokers (default 1)")
    p.add_argument("--until-stdin-closes", action="store_true", help="exit at end of stdin")
    args = p.parse_args(argv)
    serve(args.brokers, until_stdin_closes=args.until_stdin_closes, out=sys.stdout)
    return 0


try:
    import pytest
except ImportError:  # pytest is a development dependency: no fixture without it
    pass
else:

    @pytest.fixture(scope="session")
    def kafka_broker() -> Iterator[str]:
        """Bootstrap address of a mock Kafka cluster shared by the test session.

        flowlib's pytest plugin provides it to every test suite (no conftest needed). Give each
        test its own topic names.
        """
        with MockKafkaBroker() as broker:
            assert broker.bootstrap is not None
            yield broker.bootstrap


if __name__ == "__main__":
    sys.exit(main())
