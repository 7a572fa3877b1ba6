"""Prometheus metrics: the collector, the server, and ``flowlib run --metrics-port``."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from flowlib.engine._counters import Counters
from flowlib.observe import MetricsServer
from tests.examples.cli_helpers import ROOT, flowlib_command
from tests.examples.test_log_agg import with_garbage


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return str(resp.read().decode())


def value(text: str, metric: str, step: str) -> float | None:
    m = re.search(rf'^{metric}{{[^}}]*step="{step}"[^}}]*}} (\S+)$', text, re.MULTILINE)
    return None if m is None else float(m.group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_reads_counters_at_scrape_time() -> None:
    counters = Counters("f", [("src", "source"), ("out", "sink")])
    server = MetricsServer(counters, 0)
    try:
        assert value(scrape(server.port), "flowlib_records_in_total", "src") == 0
        counters.add("src", 10, 8, 2, 1)
        text = scrape(server.port)
    finally:
        server.close()
    assert value(text, "flowlib_records_in_total", "src") == 10
    assert value(text, "flowlib_records_out_total", "src") == 8
    assert value(text, "flowlib_dead_letters_total", "src") == 2
    assert value(text, "flowlib_late_events_total", "src") == 1
    assert 'flowlib_records_in_total{flow="f",kind="sink",step="out"} 0.0' in text
    assert "# TYPE flowlib_records_in_total counter" in text


def test_cli_serves_growing_counters_during_the_run(tmp_path: Path) -> None:
    log, _ = with_garbage(tmp_path, copies=100)
    port = free_port()
    cmd = [*flowlib_command(), "run", str(ROOT / "examples" / "log_agg.py"), "-q",
           "--metrics-port", str(port), "--", str(log), "--out", str(tmp_path / "o")]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            seen: list[float] = []
            deadline = time.monotonic() + 60
            while len(seen) < 2 and time.monotonic() < deadline:
                assert proc.poll() is None, "the run ended before two scrapes were seen"
                try:
                    v = value(scrape(port), "flowlib_records_in_total", "parse")
                except (urllib.error.URLError, ConnectionError):
                    v = None  # not serving yet
                if v is not None and v > 0:
                    seen.append(v)
                time.sleep(0.2)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert len(seen) == 2
    assert 0 < seen[0] <= seen[1]
    assert proc.returncode == 0, stderr
