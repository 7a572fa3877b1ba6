"""Observability of a run: Prometheus metrics, levelled logs, a progress display.

Everything here reads the engine's per-step :class:`~flowlib.engine._counters.Counters` from
background threads; nothing runs per event.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from flowlib.engine._counters import Counters
from flowlib.observe._fields import fields
from flowlib.observe._logging import (
    CheckpointLog,
    DeadLetterLog,
    configure,
    format_for,
    level_for,
    log_end,
    log_start,
)
from flowlib.observe._progress import LiveState, Periodic, ProcessesProgress, Progress

if TYPE_CHECKING:
    from flowlib.observe._metrics import CountersCollector, MetricsServer

__all__ = [
    "CheckpointLog", "CountersCollector", "DeadLetterLog", "LiveState", "MetricsServer",
    "Observers", "Periodic", "ProcessesProgress", "Progress", "configure", "fields",
    "format_for", "level_for", "log_end", "log_start",
]


def __getattr__(name: str) -> Any:
    # prometheus_client is imported only by runs that serve metrics (~25 ms of start-up).
    if name in ("CountersCollector", "MetricsServer"):
        from flowlib.observe import _metrics

        return getattr(_metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Observers:
    """The observers of one run: pass :meth:`start` as ``run(on_start=...)``; leaving the
    ``with`` block stops them (erasing the progress line)."""

    def __init__(
        self, *, metrics_port: int | None, progress: bool, tty: bool | None = None,
        live_file: Path | None = None, metrics_host: str = "127.0.0.1",
    ) -> None:
        self._metrics_port = metrics_port
        self._metrics_host = metrics_host
        self._progress = progress
        self._tty = sys.stderr.isatty() if tty is None else tty  # draw progress, or log it
        self._live_file = live_file  # a process of `flowlib run -p N`: its launcher reads it
        self.metrics: MetricsServer | None = None
        self._threads: list[Periodic] = []

    def start(self, counters: Counters) -> None:
        if self._metrics_port is not None:
            from flowlib.observe._metrics import MetricsServer

            self.metrics = MetricsServer(counters, self._metrics_port, self._metrics_host)
        self._threads.append(DeadLetterLog(counters))
        self._threads.append(CheckpointLog(counters))
        if self._progress:
            self._threads.append(Progress(counters, sys.stderr, tty=self._tty))
        if self._live_file is not None:
            self._threads.append(LiveState(counters, self._live_file))
        for t in self._threads:
            t.start()

    def close(self) -> None:
        for t in self._threads:
            t.stop()
        self._threads.clear()
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def __enter__(self) -> Observers:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
