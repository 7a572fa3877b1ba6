"""examples/log_agg_kafka.py on real LogHub lines through the mock broker, checked against
LogHub's labels; a kill -9 mid-run and a resume lose nothing and duplicate no count."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from flowlib._script import load_flow
from flowlib.engine import run
from tests.examples.cli_helpers import (
    LOGHUB,
    ROOT,
    flowlib_command,
    step_counts,
    structured_rows,
)
from tests.flowlib.connectors.test_kafka_helpers import Got, consume, new_topic, produce

SCRIPT = ROOT / "examples" / "log_agg_kafka.py"
LINES = (LOGHUB / "Apache" / "Apache_2k.log").read_bytes().splitlines()
GARBAGE = [b"this is not a log line", b"[Sun Dec 04 04:47:44 2005] notice missing brackets",
           b"[Sun Dec 04 04:47:44 2005] [error] a message no template knows", b"\xff\xfe\x00"]


def expected_counts() -> Counter[tuple[str, str]]:
    return Counter((r["Level"], r["EventId"]) for r in structured_rows("Apache"))


def with_garbage(copies: int) -> tuple[list[bytes], set[bytes]]:
    out: list[bytes] = []
    for c in range(copies):
        for i, line in enumerate(LINES):
            out.append(line)
            if i % 500 == 7:
                out.append(GARBAGE[(i // 500 + c) % len(GARBAGE)])
    return out, set(GARBAGE)


def load_input(kafka_broker: str, topic: str, lines: list[bytes]) -> dict[tuple[int, int], bytes]:
    """The lines spread over the topic's 4 partitions; returns each one's coordinates."""
    where: dict[tuple[int, int], bytes] = {}
    for p in range(4):
        part = lines[p::4]
        where.update(zip(produce(kafka_broker, topic, part, partition=p), part, strict=True))
    return where


def topics() -> list[str]:
    t = new_topic("logs")
    return ["--input", t, "--output", f"{t}-counts", "--dead-letters", f"{t}-dead"]


def counts_of(got: list[Got]) -> Counter[tuple[str, str]]:
    rows = [orjson.loads(g.value or b"") for g in got]
    counts = Counter({(r["level"], r["template_id"]): r["count"] for r in rows})
    assert len(rows) == len(counts), "one record per (level, template)"
    assert all(g.key == f"{r['level']}/{r['template_id']}".encode()
               for g, r in zip(got, rows, strict=True))
    return counts


def origins(got: list[Got]) -> list[tuple[int, int]]:
    def coordinates(g: Got) -> tuple[int, int]:
        h = dict(g.headers)
        return int(h["flowlib.source.partition"] or b""), int(h["flowlib.source.offset"] or b"")

    return [coordinates(g) for g in got]


def test_counts_match_loghub_labels_and_bad_lines_land_in_the_dead_letter_topic(
    kafka_broker: str,
) -> None:
    names = topics()
    lines, bad = with_garbage(1)
    where = load_input(kafka_broker, names[1], lines)
    report = run(load_flow(str(SCRIPT), ["--brokers", kafka_broker, *names]))
    assert counts_of(consume(kafka_broker, names[3])) == expected_counts()
    dead = consume(kafka_broker, names[5])
    assert {g.value for g in dead} == bad
    assert len(dead) == len(lines) - len(LINES)
    for (partition, offset), g in zip(origins(dead), dead, strict=True):
        assert where[(partition, offset)] == g.value  # the original bytes, untouched
        assert dict(g.headers)["flowlib.source.topic"] == names[1].encode()
        assert dict(g.headers)["flowlib.step"] == b"parse"
    parse = report.step("parse")
    assert (parse.records_in, parse.records_out, parse.dead_letters) == (
        len(lines), len(LINES), len(dead))


def test_kill_9_and_resume_lose_nothing_and_count_nothing_twice(
    kafka_broker: str, tmp_path: Path
) -> None:
    copies = 400  # long enough (~3 s) to be killed mid-input on a fast machine
    names = topics()
    lines, _ = with_garbage(copies)
    where = load_input(kafka_broker, names[1], lines)
    bad_at = {xy for xy, line in where.items() if line in GARBAGE}
    recovery = tmp_path / "recovery"
    cmd = [*flowlib_command(), "run", str(SCRIPT), "--recovery", str(recovery),
           "--snapshot-interval", "0.2", "--", "--brokers", kafka_broker, *names]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with (tmp_path / "crashed.stderr").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=log, env=env, start_new_session=True)
        # Kill as soon as a dead letter shows that a checkpoint was taken and committed (they
        # are written in its transaction): later, a fast machine may have read the whole input.
        watcher = Consumer({"bootstrap.servers": kafka_broker, "group.id": "watch",
                            "isolation.level": "read_committed"})
        watcher.assign([TopicPartition(names[5], p, -2) for p in range(4)])
        seen, deadline = 0, time.monotonic() + 120
        while seen < 1:
            assert time.monotonic() < deadline, "no dead letter came"
            assert proc.poll() is None, "the run ended before it could be killed: make it longer"
            seen += sum(1 for m in watcher.consume(1000, 0.05) if m.error() is None)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        watcher.close()
    assert consume(kafka_broker, names[3]) == []  # counts come at the end of the input only
    resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    # the resumed run read only the rest
    assert 0 < step_counts(resumed.stderr, "parse")[0] < len(lines)
    assert counts_of(consume(kafka_broker, names[3])) == Counter(
        {k: v * copies for k, v in expected_counts().items()})
    # No dead letter is lost. (The mock broker shows records of transactions aborted by the
    # crash to read_committed consumers, so duplicates cannot be judged here: see
    # test_kafka_exactly_once.py.)
    assert set(origins(consume(kafka_broker, names[5]))) == bad_at
