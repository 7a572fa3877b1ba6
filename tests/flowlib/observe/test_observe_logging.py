"""Levelled logs: level selection, dead-letter lines, and ``flowlib run -v`` / ``-q``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flowlib.engine._counters import Counters
from flowlib.observe import DeadLetterLog, format_for, level_for
from tests.examples.cli_helpers import ROOT, flowlib_command
from tests.examples.test_log_agg import with_garbage


def test_level_from_flags_then_environment() -> None:
    assert level_for(0, {}) == logging.WARNING
    assert level_for(1, {}) == logging.INFO
    assert level_for(2, {"FLOWLIB_LOG_LEVEL": "error"}) == logging.DEBUG
    assert level_for(0, {"FLOWLIB_LOG_LEVEL": "info"}) == logging.INFO
    assert level_for(0, {"FLOWLIB_LOG_LEVEL": "nonsense"}) == logging.WARNING


def test_one_line_per_increase_of_dead_letters(caplog: pytest.LogCaptureFixture) -> None:
    counters = Counters("f", [("parse", "source")])
    watcher = DeadLetterLog(counters, interval=3600)  # ticked by hand
    with caplog.at_level(logging.INFO, logger="flowlib"):
        watcher.tick()
        counters.add("parse", 10, 7, 3)
        counters.add("parse", 10, 8, 2)
        watcher.tick()
        watcher.tick()
    assert [r.getMessage() for r in caplog.records] == [
        "f: 5 new dead letter(s) at step parse (5 in all)"]


def flowlib_run(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> str:
    log, _ = with_garbage(tmp_path)
    proc = subprocess.run(
        [*flowlib_command(), "run", str(ROOT / "examples" / "log_agg.py"), *flags,
         "--", str(log), "--out", str(tmp_path / "o")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_verbose_logs_start_end_and_dead_letters(tmp_path: Path) -> None:
    err = flowlib_run(tmp_path, "-v")
    assert "INFO starting flow log_agg: 1 worker(s) x 1 process(es), recovery dir none" in err
    assert "new dead letter(s) at step parse (4 in all)" in err
    assert "INFO flow log_agg done in" in err
    assert "parse in=2004 out=2000 dead=4 late=0" in err
    assert "dead letters  late" in err  # the table still follows


def test_quiet_silences_the_table_and_default_logs_nothing(tmp_path: Path) -> None:
    assert flowlib_run(tmp_path, "-q") == ""
    err = flowlib_run(tmp_path)
    assert "INFO" not in err
    assert "dead letters  late" in err


def test_log_level_from_environment(tmp_path: Path) -> None:
    err = flowlib_run(tmp_path, "-q", env={**os.environ, "FLOWLIB_LOG_LEVEL": "INFO"})
    assert "INFO flow log_agg done in" in err
    assert "dead letters  late" not in err


def test_log_format_from_flag_then_environment() -> None:
    assert format_for(None, {}) == "text"
    assert format_for(None, {"FLOWLIB_LOG_FORMAT": "JSON"}) == "json"
    assert format_for("text", {"FLOWLIB_LOG_FORMAT": "json"}) == "text"
    with pytest.raises(ValueError, match="log format must be one of text, json, got 'xml'"):
        format_for("xml", {})


def test_json_logs_are_one_object_per_line_with_each_events_values(tmp_path: Path) -> None:
    log, _ = with_garbage(tmp_path, copies=20)
    proc = subprocess.run(
        [*flowlib_command(), "run", str(ROOT / "examples" / "log_agg.py"), "-v",
         "--log-format", "json", "--recovery", str(tmp_path / "rec"),
         "--snapshot-interval", "0.05", "--", str(log), "--out", str(tmp_path / "o")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines()]  # no table, no bar
    assert all({"time", "level", "logger", "pid", "message"} <= r.keys() for r in records)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_event.setdefault(r.get("event", ""), []).append(r)
    [start] = by_event["run_start"]
    assert (start["flow"], start["workers"], start["recovery"]) == (
        "log_agg", 1, str(tmp_path / "rec"))
    [end] = by_event["run_end"]
    parse = next(s for s in end["steps"] if s["step"] == "parse")
    assert (parse["in"], parse["out"], parse["dead_letters"]) == (40_080, 40_000, 80)
    assert end["records_read"] == 40_080
    assert sum(r["new"] for r in by_event["dead_letters"]) == 80
    checkpoints = by_event["checkpoint"]
    assert [c["number"] for c in checkpoints] == list(range(1, len(checkpoints) + 1))
    assert all(c["bytes"] == sum(c["bytes_by_step"].values()) > 0 for c in checkpoints)


def test_a_bad_log_format_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*flowlib_command(), "run", str(ROOT / "examples" / "log_agg.py"), "--log-format", "xml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "flowlib: error: log format must be one of text, json, got 'xml'"
