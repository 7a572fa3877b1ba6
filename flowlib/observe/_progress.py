"""A one-line progress display of a run, refreshed from a background thread."""

from __future__ import annotations

import logging
import threading
import time
from typing import TextIO

from flowlib.engine._counters import Counters

__all__ = ["Periodic", "Progress"]

log = logging.getLogger("flowlib.progress")


class Periodic:
    """Calls ``tick`` every ``interval`` seconds on a daemon thread, and once more on
    :meth:`stop` (so the last values are seen)."""

    def __init__(self, interval: float, name: str) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.tick()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.tick()


class Progress(Periodic):
    """Records read by the source steps, and the rate.

    On a terminal: one line, redrawn with a carriage return ~4 times a second and erased at
    the end. Otherwise: a plain INFO log line every ``log_interval`` seconds.
    """

    def __init__(
        self, counters: Counters, stream: TextIO, *, tty: bool, log_interval: float = 5.0
    ) -> None:
        super().__init__(0.25 if tty else log_interval, "flowlib-progress")
        self._counters = counters
        self._stream = stream
        self._tty = tty
        self._started = time.perf_counter()
        self._final = False

    def line(self) -> str:
        """The progress text: source records, rate, elapsed time."""
        report = self._counters.report(0.0)
        read = sum(s.records_in for s in report.steps if s.kind == "source")
        elapsed = time.perf_counter() - self._started
        rate = read / elapsed if elapsed > 0 else 0.0
        return f"{report.flow}: {read:,} records read, {rate:,.0f}/s, {elapsed:.1f} s"

    def tick(self) -> None:
        if self._final:
            return
        if self._tty:
            self._stream.write("\r" + self.line() + "\x1b[K")
            self._stream.flush()
        else:
            log.info("%s", self.line())

    def stop(self) -> None:
        super().stop()
        self._final = True
        if self._tty:  # erase the line: the summary table follows
            self._stream.write("\r\x1b[K")
            self._stream.flush()
