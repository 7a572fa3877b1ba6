"""Levelled logs of a run: configuration, start and end lines, dead-letter increases."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from flowlib.engine._counters import Counters, RunReport
from flowlib.observe._progress import Periodic

__all__ = ["DeadLetterLog", "configure", "level_for", "log_end", "log_start"]

log = logging.getLogger("flowlib")


def level_for(verbose: int, env: Mapping[str, str] | None = None) -> int:
    """The level of ``flowlib`` logs: ``-v`` INFO, ``-vv`` DEBUG; without ``-v``,
    ``FLOWLIB_LOG_LEVEL`` (a level name), else WARNING."""
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    name = (os.environ if env is None else env).get("FLOWLIB_LOG_LEVEL", "").strip().upper()
    level = logging.getLevelNamesMapping().get(name) if name else None
    return logging.WARNING if level is None else level


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Erases a progress line on a terminal before writing, so logs never run into it."""

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream.isatty():
            self.stream.write("\r\x1b[K")
        super().emit(record)


def configure(level: int) -> None:
    """Send ``flowlib`` logs at ``level`` and above to stderr (idempotent)."""
    for h in list(log.handlers):
        if isinstance(h, _Handler):
            log.removeHandler(h)
    handler = _Handler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s flowlib[%(process)d] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def log_start(
    flow: str, workers: int, processes: int, recovery: Path | None, process_id: int | None
) -> None:
    where = "" if process_id is None else f" (process {process_id})"
    log.info("starting flow %s%s: %d worker(s) x %d process(es), recovery dir %s",
             flow, where, workers, processes, recovery if recovery is not None else "none")


def log_end(report: RunReport) -> None:
    steps = "; ".join(
        f"{s.step} in={s.records_in} out={s.records_out} dead={s.dead_letters} late={s.late}"
        for s in report.steps
    )
    log.info("flow %s done in %.2f s: %s", report.flow, report.wall_seconds, steps)


class DeadLetterLog(Periodic):
    """Every ``interval`` seconds, one INFO line per step whose dead letters increased.

    Reads counter deltas rather than hooking each batch: the log volume stays bounded however
    fast dead letters come.
    """

    def __init__(self, counters: Counters, interval: float = 1.0) -> None:
        super().__init__(interval, "flowlib-dead-letters")
        self._counters = counters
        self._seen: dict[str, int] = {}

    def tick(self) -> None:
        report = self._counters.report(0.0)
        for s in report.steps:
            new = s.dead_letters - self._seen.get(s.step, 0)
            if new > 0:
                self._seen[s.step] = s.dead_letters
                log.info("%s: %d new dead letter(s) at step %s (%d in all)",
                         report.flow, new, s.step, s.dead_letters)
