"""Levelled logs of a run: configuration, start and end lines, checkpoints, dead-letter
increases."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from flowlib.engine._counters import Counters, RunReport
from flowlib.observe._progress import Periodic, format_bytes

__all__ = ["CheckpointLog", "DeadLetterLog", "configure", "level_for", "log_end", "log_start"]

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


class CheckpointLog(Periodic):
    """One INFO line per checkpoint this process took part in, once its snapshots are done:
    its number, the key group snapshots taken, their bytes per step and the time they took."""

    def __init__(self, counters: Counters, interval: float = 0.2) -> None:
        super().__init__(interval, "flowlib-checkpoints")
        self._counters = counters
        self._stopping = False

    def tick(self) -> None:
        for cp in self._counters.checkpoints.take_finished(all_=self._stopping):
            steps = ", ".join(f"{s} {format_bytes(n)}" for s, n in sorted(cp.bytes_by_step.items()))
            log.info("%s: checkpoint %d: %d key group snapshot(s), %s (%s) in %.3f s",
                     self._counters.flow, cp.number, cp.groups, format_bytes(cp.bytes), steps,
                     cp.seconds)

    def stop(self) -> None:
        self._stopping = True  # the last tick logs a checkpoint still open: the run ended
        super().stop()

