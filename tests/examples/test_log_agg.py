"""examples/log_agg.py run by the CLI on the real Apache sample, checked against LogHub's labels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.examples.cli_helpers import (
    LOGHUB,
    ROOT,
    flowlib_command,
    run_cli,
    step_counts,
    structured_rows,
)

SCRIPT = ROOT / "examples" / "log_agg.py"
APACHE = LOGHUB / "Apache" / "Apache_2k.log"


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def minute_of(ts: datetime) -> str:
    return ts.replace(second=0, microsecond=0).isoformat()


def expected_window_counts(shift_days: int = 0) -> Counter[tuple[str, str, str]]:
    """LogHub's labels counted per (minute, level, template), independently of flowlib."""
    out: Counter[tuple[str, str, str]] = Counter()
    for r in structured_rows("Apache"):
        t = datetime.strptime(r["Time"], "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
        out[(minute_of(t + timedelta(days=shift_days)), r["Level"], r["EventId"])] += 1
    return out


def expected_template_counts() -> Counter[tuple[str, str]]:
    return Counter((r["Level"], r["EventId"]) for r in structured_rows("Apache"))


def expected_minute_counts() -> Counter[str]:
    out: Counter[str] = Counter()
    for (minute, _, _), n in expected_window_counts().items():
        out[minute] += n
    return out


def window_counts(out: Path) -> Counter[tuple[str, str, str]]:
    rows = read_jsonl(out / "counts_by_template.jsonl")
    got: Counter[tuple[str, str, str]] = Counter()
    for r in rows:
        minute = datetime.fromisoformat(str(r["minute"])).isoformat()
        got[(minute, str(r["level"]), str(r["template_id"]))] += int(str(r["count"]))
    assert len(rows) == len(got), "one row per (minute, level, template)"
    return got


def template_counts(out: Path) -> Counter[tuple[str, str]]:
    got: Counter[tuple[str, str]] = Counter()
    for (_, level, tid), n in window_counts(out).items():
        got[(level, tid)] += n
    return got


def minute_counts(out: Path) -> Counter[str]:
    rows = read_jsonl(out / "counts_by_minute.jsonl")
    got: Counter[str] = Counter()
    for r in rows:
        got[datetime.fromisoformat(str(r["minute"])).isoformat()] += int(str(r["count"]))
    assert len(rows) == len(got)
    return got


def test_counts_match_loghub_labels(tmp_path: Path) -> None:
    stderr = run_cli("run", SCRIPT, "--", "--out", tmp_path)
    assert window_counts(tmp_path) == expected_window_counts()
    assert template_counts(tmp_path) == expected_template_counts()
    assert minute_counts(tmp_path) == expected_minute_counts()
    assert (tmp_path / "late.jsonl").read_text() == ""  # Apache steps back 2 s at most
    assert (tmp_path / "dead_letters.jsonl").read_text() == ""
    assert "count_per_template" in stderr and "2000" in stderr  # the per-step report


def test_default_run_writes_to_out(tmp_path: Path) -> None:
    run_cli("run", SCRIPT, cwd=tmp_path)
    assert template_counts(tmp_path / "out" / "log_agg") == expected_template_counts()


def shifted(line: str, days: int) -> str:
    """An Apache line with its timestamp moved ``days`` later."""
    stamp, rest = line[1:25], line[25:]
    t = datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y") + timedelta(days=days)
    return "[" + t.strftime("%a %b %d %H:%M:%S %Y") + rest


def with_garbage(tmp_path: Path, copies: int = 1) -> tuple[Path, list[str]]:
    """The Apache sample ``copies`` times (each 2 days after the last), with bad lines mixed in."""
    lines = APACHE.read_text().splitlines()
    garbage = ["this is not a log line", "[Sun Dec 04 04:47:44 2005] notice missing brackets",
               "[Xyz Dec 04 04:47:44 2005] [notice] bad weekday",
               "[Sun Dec 04 04:47:44 2005] [error] a message no template knows"]
    out, bad = [], []
    for c in range(copies):
        for i, line in enumerate(lines):
            out.append(shifted(line, 2 * c))
            if i % 500 == 7:
                g = garbage[(i // 500 + c) % len(garbage)]
                out.append(g)
                bad.append(g)
    path = tmp_path / "apache_with_garbage.log"
    path.write_text("\r\n".join(out) + "\r\n")
    return path, bad


def test_malformed_lines_become_dead_letters_and_counts_add_up(tmp_path: Path) -> None:
    log, bad = with_garbage(tmp_path)
    stderr = run_cli("run", SCRIPT, "--", log, "--out", tmp_path / "o")
    assert template_counts(tmp_path / "o") == expected_template_counts()
    dead = read_jsonl(tmp_path / "o" / "dead_letters.jsonl")
    assert sorted(str(d["record"]) for d in dead) == sorted(bad)
    assert {d["step"] for d in dead} == {"parse"}
    assert all(str(d["origin"]).startswith(str(log) + ":") for d in dead)
    # in = out + dead letters for the source step, as the report prints it
    n_in, n_out, n_dead, _ = step_counts(stderr, "parse")
    assert (n_in, n_out, n_dead) == (2000 + len(bad), 2000, len(bad))


def test_two_processes_give_the_same_result(tmp_path: Path) -> None:
    run_cli("run", SCRIPT, "-p", "2", "--", "--out", tmp_path / "p2")
    run_cli("run", SCRIPT, "-w", "2", "--", "--out", tmp_path / "w2")
    assert template_counts(tmp_path / "p2") == expected_template_counts()
    assert minute_counts(tmp_path / "p2") == expected_minute_counts()
    assert template_counts(tmp_path / "w2") == expected_template_counts()


@pytest.mark.parametrize(("fmt", "system"), [("hpc", "HPC"), ("zookeeper", "Zookeeper")])
def test_out_of_order_logs_route_late_events_and_counts_add_up(
    tmp_path: Path, fmt: str, system: str
) -> None:
    stderr = run_cli("run", SCRIPT, "--", "--format", fmt, "--max-delay", "60",
                     "--out", tmp_path)
    rows = structured_rows(system)
    level_column = "Component" if fmt == "hpc" else "Level"
    late = read_jsonl(tmp_path / "late.jsonl")
    assert late, "these samples step back in time by days: some events must be late"
    for e in late:  # the watermark trails the largest time seen by 60 s; late is behind it
        ts, wm = datetime.fromisoformat(str(e["ts"])), datetime.fromisoformat(str(e["watermark"]))
        assert ts < wm
    counted = template_counts(tmp_path)
    late_counts = Counter((str(e["level"]), str(e["template_id"])) for e in late)
    # every line is counted in a window or routed late: nothing lost, nothing twice
    assert counted + late_counts == Counter((r[level_column], r["EventId"]) for r in rows)
    assert sum(counted.values()) + len(late) == 2000
    assert (tmp_path / "dead_letters.jsonl").read_text() == ""
    assert step_counts(stderr, "count_per_template")[3] == len(late)  # the report's late column


def test_kill_9_and_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    log, bad = with_garbage(tmp_path, copies=150)  # 300k lines: a run of several seconds
    run_cli("run", SCRIPT, "--", log, "--out", tmp_path / "clean")
    recovery = tmp_path / "recovery"
    args = [*flowlib_command(), "run", str(SCRIPT), "-v", "--recovery", str(recovery),
            "--snapshot-interval", "0.2", "--", str(log), "--out", str(tmp_path / "crashed")]
    stderr_path = tmp_path / "crashed_run.stderr"
    log_file = stderr_path.open("wb")
    proc = subprocess.Popen(args, cwd=ROOT, stderr=log_file, start_new_session=True)
    dead_file = tmp_path / "crashed" / "dead_letters.jsonl"
    deadline = time.monotonic() + 120
    # Kill once dead letters show the run is well under way but not finished, and it has
    # logged two checkpoints (so the first is committed: there is something to resume from).
    while time.monotonic() < deadline:
        if (dead_file.exists() and dead_file.stat().st_size > 20_000
                and ": checkpoint 2: " in stderr_path.read_text()):
            break
        assert proc.poll() is None, "the run ended before it could be killed: make it longer"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log_file.close()
    # Windows close as the watermark passes: the crashed run had written part of its output,
    # which the resumed run must neither lose nor repeat.
    assert (tmp_path / "crashed" / "counts_by_template.jsonl").stat().st_size > 0
    stderr = run_cli("run", SCRIPT, "--recovery", recovery, "--snapshot-interval", "0.2", "--",
                     log, "--out", tmp_path / "crashed")
    # The second run resumed from a checkpoint: it read only part of the input.
    resumed_in = step_counts(stderr, "parse")[0]
    assert 0 < resumed_in < 300_000 + len(bad)
    for name in ("counts_by_template.jsonl", "counts_by_minute.jsonl"):
        clean = sorted((tmp_path / "clean" / name).read_text().splitlines())
        resumed = sorted((tmp_path / "crashed" / name).read_text().splitlines())
        assert resumed == clean, name
    clean_dead = [d["record"] for d in read_jsonl(tmp_path / "clean" / "dead_letters.jsonl")]
    resumed_dead = [d["record"] for d in read_jsonl(dead_file)]
    assert resumed_dead == clean_dead  # no dead letter lost or written twice
    assert len(clean_dead) == len(bad)
    expected: Counter[tuple[str, str, str]] = Counter()
    for c in range(150):
        expected += expected_window_counts(shift_days=2 * c)
    assert window_counts(tmp_path / "crashed") == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("examples/nope.py", "flowlib: error: script not found: examples/nope.py"),
        ("examples/log_agg.py:nothing", "flowlib: error: examples/log_agg.py has no variable "
         "'nothing'; it defines flow"),
        ("examples/log_agg.py:DATA", "flowlib: error: examples/log_agg.py:DATA is a PosixPath, "
         "not a flowlib Flow"),
    ],
)
def test_bad_targets_give_one_line_errors(target: str, message: str) -> None:
    proc = subprocess.run([*flowlib_command(), "run", target], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == message
