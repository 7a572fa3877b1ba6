"""The progress display: carriage-return lines on a terminal, none otherwise."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
from pathlib import Path

from flowlib.engine._counters import Counters
from flowlib.observe import Progress
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
    assert "\r\x1b[K" in err  # erased before the table
    assert "dead letters  late" in err


def test_quiet_on_a_terminal_shows_nothing(tmp_path: Path) -> None:
    assert run_on_pty(command(tmp_path, "-q")) == ""


def test_no_carriage_returns_without_a_terminal(tmp_path: Path) -> None:
    # Bytes, not text: universal newlines would turn "\r" into "\n".
    proc = subprocess.run(command(tmp_path, "-v"), cwd=ROOT, capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert b"\r" not in proc.stderr
    assert b"records read" in proc.stderr  # as plain log lines
