"""The progress display: carriage-return lines on a terminal, none otherwise."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import select
import subprocess
from pathlib import Path

import pytest

from flowlib.engine._counters import Counters
from flowlib.observe import LiveState, Periodic, ProcessesProgress, Progress
from tests.examples.cli_helpers import ROOT, flowlib_command
from tests.examples.test_log_agg import with_garbage


def test_tty_line_is_redrawn_then_erased() -> None:
    counters = Counters("f", [("src", "source"), ("m", "map")])
    counters.add("src", 1500, 1500, 0)
    counters.add("m", 99, 99, 0)  # not a source: not counted
    out = io.StringIO()
    p = Progress(counters, out, tty=True)
    p.tick()
    assert out.getvalue().startswith("\rf: 1,500 records read, ")
    p.start()
    p.stop()
    assert out.getvalue().endswith("\r\x1b[K")


def test_bounded_input_shows_share_read_and_eta() -> None:
    counters = Counters("f", [("src", "source"), ("kafka", "source")])
    counters.source_size("src", "a.jsonl#1/2", (256, 1024), "bytes")
    counters.source_size("src", "a.jsonl#2/2", (0, 1024), "bytes")
    counters.source_size("src", "gone", None, "bytes")  # unsized partitions are left out
    p = Progress(counters, io.StringIO(), tty=True)
    # The first look is the baseline (a resumed run's earlier work): no rate yet, no ETA.
    assert p.line().endswith(" | 256 B of 2.0 KiB (12%), ETA ?")
    counters.source_size("src", "a.jsonl#2/2", (768, 1024), "bytes")
    counters.source_size("kafka", "t/0", (5, 10), "records")
    line = p.line()
    assert " | 1.0 KiB of 2.0 KiB (50%), 5 of 10 records (50%), ETA " in line
    # The records started after the baseline: no rate for them yet, so no ETA overall.
    assert line.endswith("ETA ?")
    counters.source_size("kafka", "t/0", (10, 10), "records")
    assert re.search(r"\(50%\), 10 of 10 records \(100%\), ETA \d+ s$", p.line())


def test_tty_line_of_a_bounded_input_has_a_bar_of_the_least_read_input() -> None:
    counters = Counters("f", [("src", "source"), ("kafka", "source")])
    counters.add("src", 10, 10, 0)
    counters.source_size("src", "a", (512, 1024), "bytes")
    counters.source_size("kafka", "t/0", (1, 4), "records")
    out = io.StringIO()
    p = Progress(counters, out, tty=True)
    assert p.bar(width=8) == "[==>     ] "  # a quarter: the records, behind the bytes
    p.tick()
    assert out.getvalue().startswith("\rf: [" + "=" * 6 + ">" + " " * 17 + "] 10 records read, ")
    counters.source_size("kafka", "t/0", (4, 4), "records")
    counters.source_size("src", "a", (1024, 1024), "bytes")
    assert p.bar(width=8) == "[========] "
    assert Progress(Counters("g", [("s", "source")]), out, tty=True).bar() == ""  # unsized


def test_unsized_input_shows_records_only() -> None:
    counters = Counters("f", [("src", "source")])
    counters.add("src", 7, 7, 0)
    line = Progress(counters, io.StringIO(), tty=False).line()
    assert re.fullmatch(r"f: 7 records read, [\d,]+/s, [\d.]+ s", line)


def command(tmp_path: Path, *flags: str) -> list[str]:
    log, _ = with_garbage(tmp_path, copies=30)
    return [*flowlib_command(), "run", str(ROOT / "examples" / "log_agg.py"), *flags,
            "--", str(log), "--out", str(tmp_path / "o")]


def run_on_pty(cmd: list[str]) -> str:
    """Run ``cmd`` with a pseudo-terminal as its stderr; return what it wrote there."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []
    try:
        with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=slave) as proc:
            os.close(slave)
            slave = -1
            while True:  # read as it comes: a full pty buffer would block the child
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: the child closed its end
                        break
                    if not data:
                        break
                    chunks.append(data)
                elif proc.poll() is not None:
                    break
            assert proc.wait(timeout=60) == 0, b"".join(chunks).decode()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return b"".join(chunks).decode()


def test_progress_on_a_terminal(tmp_path: Path) -> None:
    err = run_on_pty(command(tmp_path))
    lines = [s for s in err.split("\r") if s.startswith("log_agg: ") and "records read" in s]
    assert len(lines) >= 2, err
    # A bounded file: how much of it is read, and when it should end.
    assert any(re.search(r" \| [\d.]+ [KMG]?i?B of [\d.]+ [KMG]?i?B \(\d+%\), ETA ", s)
               for s in lines), err
    assert all(re.match(r"log_agg: \[[=> ]{24}\] [\d,]+ records read", s) for s in lines), err
    assert "\r\x1b[K" in err  # erased before the table
    assert re.search(r"dead letters  late +in/s", err), err
    assert re.search(r"log_agg: done in [\d.]+ s, [\d,]+ records read \([\d,]+/s\)", err), err


def test_progress_of_several_processes_on_a_terminal(tmp_path: Path) -> None:
    """With -p 2 the launcher shows the progress its processes write while they run."""
    err = run_on_pty(command(tmp_path, "-p", "2"))
    lines = [s for s in err.split("\r") if s.startswith("log_agg: [")]
    assert lines, err
    read = [int(m.group(1).replace(",", "")) for s in lines
            if (m := re.search(r"\] ([\d,]+) records read", s))]
    assert read == sorted(read) and read[-1] > 0, err
    assert re.search(r"log_agg: done in [\d.]+ s, 60,120 records read", err), err


def test_quiet_on_a_terminal_shows_nothing(tmp_path: Path) -> None:
    assert run_on_pty(command(tmp_path, "-q")) == ""


def test_no_carriage_returns_without_a_terminal(tmp_path: Path) -> None:
    # Bytes, not text: universal newlines would turn "\r" into "\n".
    proc = subprocess.run(command(tmp_path, "-v"), cwd=ROOT, capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert b"\r" not in proc.stderr
    assert b"records read" in proc.stderr  # as plain log lines


def test_a_failing_observer_logs_a_warning_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Periodic):
        def tick(self) -> None:
            raise OSError("disk full")

    p = Broken(3600, "flowlib-broken")
    with caplog.at_level(logging.WARNING, logger="flowlib"):
        p.start()
        p.stop()  # its last tick fails: reported, not raised
    assert [r.getMessage() for r in caplog.records] == ["flowlib-broken failed"]


def test_launcher_progress_sums_the_files_its_processes_keep(tmp_path: Path) -> None:
    steps = [("src", "source"), ("out", "sink")]
    a, b = Counters("f", steps), Counters("f", steps)
    a.add("src", 10, 10, 0)
    a.source_size("src", "p0", (100, 400), "bytes")
    b.add("src", 30, 30, 0)
    files = [tmp_path / "0.live.json", tmp_path / "1.live.json", tmp_path / "2.live.json"]
    LiveState(a, files[0]).tick()
    LiveState(b, files[1]).tick()
    out = io.StringIO()
    launcher = Counters("f", steps)
    progress = ProcessesProgress(launcher, files, out, tty=False)
    progress.tick()  # the third process has not written yet: nothing shown
    assert launcher.report(0).records_read == 0
    LiveState(Counters("f", steps), files[2]).tick()
    progress.tick()
    assert launcher.report(0).records_read == 40
    assert launcher.source_sizes() == {"bytes": (100, 400)}
    files[2].write_text('{"steps": [[1]], "sizes": []}')  # not this version's layout
    progress.tick()  # skipped, no error
    assert launcher.report(0).records_read == 40
