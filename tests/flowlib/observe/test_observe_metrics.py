"""Prometheus metrics: the collector, the server, and ``flowlib run --metrics-port``."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flowlib.engine._counters import Counters
from flowlib.observe import MetricsServer
from flowlib.time import to_micros
from tests.examples.cli_helpers import ROOT, flowlib_command
from tests.examples.test_log_agg import with_garbage


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return str(resp.read().decode())


def value(text: str, metric: str, step: str) -> float | None:
    m = re.search(rf'^{metric}{{[^}}]*step="{step}"[^}}]*}} (\S+)$', text, re.MULTILINE)
    return None if m is None else float(m.group(1))


_SAMPLE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$', re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample ``name`` whose labels include ``labels`` (Prometheus
    text format)."""
    for m in _SAMPLE.finditer(text):
        if m.group(1) == name and labels.items() <= dict(_LABEL.findall(m.group(2) or "")).items():
            return float(m.group(3))
    return None


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


def test_server_binds_the_host_asked_for() -> None:
    counters = Counters("f", [("src", "source")])
    server = MetricsServer(counters, 0, host="0.0.0.0")  # every interface, loopback included
    try:
        assert server.host == "0.0.0.0"
        assert sample(scrape(server.port), "flowlib_records_in_total", step="src") == 0
    finally:
        server.close()
    local = MetricsServer(counters, 0)
    try:
        assert local.host == "127.0.0.1"  # the default: loopback only
    finally:
        local.close()


def test_server_reads_latency_state_watermark_and_checkpoints() -> None:
    counters = Counters("f", [("src", "source"), ("win", "process (keyed)")])
    server = MetricsServer(counters, 0)  # turns the timing of batches on
    try:
        counters.add("win", 4, 1, 0, started=counters.start())
        counters.add("win", 4, 1, 0, started=counters.start())
        mark = datetime(2024, 1, 1, tzinfo=UTC)
        counters.groups.watch("win", _Group(mark, 3))
        counters.groups.watch("win", _Group(mark + timedelta(minutes=1), 2))
        counters.checkpoints.gap = 0.0  # each snapshot its own checkpoint, for the test
        counters.checkpoints.record("win", 0.25, 1000, now=1.0)
        counters.checkpoints.record("win", 0.5, 3000, now=2.0)
        text = scrape(server.port)
    finally:
        server.close()
    latency = "flowlib_processing_latency_seconds"
    assert sample(text, f"{latency}_count", step="win") == 2
    assert sample(text, f"{latency}_bucket", step="win", le="+Inf") == 2
    assert sample(text, f"{latency}_count", step="src") == 0
    assert sample(text, "flowlib_state_keys", step="win") == 5
    assert sample(text, "flowlib_watermark_seconds", step="win") == mark.timestamp()
    lag = sample(text, "flowlib_watermark_lag_seconds", step="win")
    assert lag is not None and abs(lag - (time.time() - mark.timestamp())) < 60
    assert sample(text, "flowlib_checkpoints_total", flow="f") == 2
    assert sample(text, "flowlib_checkpoint_duration_seconds_sum", flow="f") == 0.75
    assert sample(text, "flowlib_checkpoint_duration_seconds_bucket", flow="f", le="0.25") == 1
    assert sample(text, "flowlib_checkpoint_written_bytes_total", flow="f") == 4000
    assert sample(text, "flowlib_checkpoint_size_bytes", step="win") == 3000


@dataclass
class _Backend:
    n: int

    def approximate_len(self) -> int:
        return self.n


class _Group:
    def __init__(self, watermark: datetime, keys: int) -> None:
        self.watermark_us = to_micros(watermark)
        self.backend = _Backend(keys)


def test_cli_serves_live_metrics_during_a_run_with_checkpoints(tmp_path: Path) -> None:
    """One run of the log example, scraped while it runs: counters grow, and batch latencies,
    state keys, watermarks and checkpoints are all served; each checkpoint is logged once."""
    log, _ = with_garbage(tmp_path, copies=100)
    port = free_port()
    cmd = [*flowlib_command(), "run", str(ROOT / "examples" / "log_agg.py"), "-q", "-v",
           "--metrics-port", str(port), "--recovery", str(tmp_path / "rec"),
           "--snapshot-interval", "0.2", "--", str(log), "--out", str(tmp_path / "o")]
    step = "count_per_template"
    wanted: dict[str, Callable[[str], float | None]] = {
        "records": lambda t: sample(t, "flowlib_records_in_total", step="parse"),
        "latency": lambda t: sample(t, "flowlib_processing_latency_seconds_count", step=step),
        "keys": lambda t: sample(t, "flowlib_state_keys", step=step),
        "lag": lambda t: sample(t, "flowlib_watermark_lag_seconds", step=step),
        "checkpoints": lambda t: sample(t, "flowlib_checkpoints_total"),
        "checkpoint bytes": lambda t: sample(t, "flowlib_checkpoint_written_bytes_total"),
    }
    seen: dict[str, list[float]] = {k: [] for k in wanted}
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    text = scrape(port)
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.05)  # not serving yet
                    continue
                for k, read in wanted.items():
                    v = read(text)
                    if v:  # present and above zero
                        seen[k].append(v)
                time.sleep(0.1)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    for k, values in seen.items():
        assert values, f"{k} never served above zero during the run"
    assert len(set(seen["records"])) >= 2, "records read did not grow between scrapes"
    assert seen["records"] == sorted(seen["records"])
    # Event time of 2005 logs: the watermark lags the wall clock by years.
    assert min(seen["lag"]) > 365 * 86400
    logged = [int(m) for m in re.findall(r"INFO log_agg: checkpoint (\d+): ", stderr)]
    assert logged == list(range(1, len(logged) + 1))  # each once, in order
    assert len(logged) >= max(seen["checkpoints"])
