"""Observability of a run: Prometheus metrics, levelled logs, a progress display.

Everything here reads the engine's per-step :class:`~flowlib.engine._counters.Counters` from
background threads; nothing runs per event.
"""

from __future__ import annotations

import sys
from types import TracebackType

from flowlib.engine._counters import Counters
from flowlib.observe._logging import DeadLetterLog, configure, level_for, log_end, log_start
from flowlib.observe._metrics import CountersCollector, MetricsServer
from flowlib.observe._progress import Periodic, Progress

__all__ = [
    "CountersCollector", "DeadLetterLog", "MetricsServer", "Observers", "Periodic", "Progress",
    "configure", "level_for", "log_end", "log_start",
]


class Observers:
    """The observers of one run: pass :meth:`start` as ``run(on_start=...)``; leaving the
    ``with`` block stops them (erasing the progress line)."""

    def __init__(self, *, metrics_port: int | None, progress: bool) -> None:
        self._metrics_port = metrics_port
        self._progress = progress
        self.metrics: MetricsServer | None = None
        self._threads: list[Periodic] = []

    def start(self, counters: Counters) -> None:
        if self._metrics_port is not None:
            self.metrics = MetricsServer(counters, self._metrics_port)
        self._threads.append(DeadLetterLog(counters))
        if self._progress:
            self._threads.append(Progress(counters, sys.stderr, tty=sys.stderr.isatty()))
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
