"""Levelled logs of a run: configuration, start and end lines, checkpoints, dead-letter
increases."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowlib.engine._counters import Counters, RunReport
from flowlib.observe._fields import fields
from flowlib.observe._progress import Periodic, format_bytes

__all__ = [
    "LOG_FORMATS", "CheckpointLog", "DeadLetterLog", "JsonFormatter", "configure", "format_for",
    "level_for", "log_end", "log_start",
]

LOG_FORMATS = ("text", "json")

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


def format_for(choice: str | None, env: Mapping[str, str] | None = None) -> str:
    """The log format: ``choice`` (``--log-format``), else ``FLOWLIB_LOG_FORMAT``, else text.
    Raises ``ValueError`` naming the formats for any other value."""
    value = choice or (os.environ if env is None else env).get("FLOWLIB_LOG_FORMAT", "") or "text"
    value = value.strip().lower()
    if value not in LOG_FORMATS:
        msg = f"log format must be one of {', '.join(LOG_FORMATS)}, got {value!r}"
        raise ValueError(msg)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``pid``,
    ``message``, then the record's :func:`fields` (``event``, ...), for log collectors.

    >>> import logging
    >>> r = logging.LogRecord("flowlib", logging.INFO, "", 0, "done", None, None)
    >>> r.created, r.process, r.fields = 0.0, 7, {"event": "run_end", "wall_seconds": 1.5}
    >>> import json
    >>> json.loads(JsonFormatter().format(r))  # doctest: +NORMALIZE_WHITESPACE
    {'time': '1970-01-01T00:00:00.000+00:00', 'level': 'INFO', 'logger': 'flowlib', 'pid': 7,
     'message': 'done', 'event': 'run_end', 'wall_seconds': 1.5}
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in getattr(record, "fields", {}).items():
            data.setdefault(key, value)  # never hide the keys above
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Erases a progress line on a terminal before writing, so logs never run into it."""

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream.isatty():
            self.stream.write("\r\x1b[K")
        super().emit(record)


def configure(level: int, fmt: str = "text") -> None:
    """Send ``flowlib`` logs at ``level`` and above to stderr, as text lines or as JSON objects
    (``fmt``, see :data:`LOG_FORMATS`); idempotent."""
    for h in list(log.handlers):
        if isinstance(h, _Handler):
            log.removeHandler(h)
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s flowlib[%(process)d] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def log_start(
    flow: str, workers: int, processes: int, recovery: Path | None, process_id: int | None
) -> None:
    where = "" if process_id is None else f" (process {process_id})"
    log.info("starting flow %s%s: %d worker(s) x %d process(es), recovery dir %s",
             flow, where, workers, processes, recovery if recovery is not None else "none",
             extra=fields("run_start", flow=flow, process_id=process_id, workers=workers,
                          processes=processes,
                          recovery=str(recovery) if recovery is not None else None))


def log_end(report: RunReport) -> None:
    steps = "; ".join(
        f"{s.step} in={s.records_in} out={s.records_out} dead={s.dead_letters} late={s.late}"
        for s in report.steps
    )
    log.info("flow %s done in %.2f s: %s", report.flow, report.wall_seconds, steps,
             extra=fields("run_end", flow=report.flow, wall_seconds=report.wall_seconds,
                          records_read=report.records_read,
                          steps=[{"step": s.step, "kind": s.kind, "in": s.records_in,
                                  "out": s.records_out, "dead_letters": s.dead_letters,
                                  "late": s.late} for s in report.steps]))


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
                         report.flow, new, s.step, s.dead_letters,
                         extra=fields("dead_letters", flow=report.flow, step=s.step, new=new,
                                      total=s.dead_letters))


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
                     cp.seconds,
                     extra=fields("checkpoint", flow=self._counters.flow, number=cp.number,
                                  key_groups=cp.groups, bytes=cp.bytes,
                                  bytes_by_step=cp.bytes_by_step, seconds=cp.seconds))

    def stop(self) -> None:
        self._stopping = True  # the last tick logs a checkpoint still open: the run ended
        super().stop()

