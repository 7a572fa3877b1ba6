"""A one-line progress display of a run, refreshed from a background thread."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from flowlib.engine._counters import Counters
from flowlib.observe._fields import fields

__all__ = ["LiveState", "Periodic", "Progress", "ProcessesProgress", "format_bytes"]

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

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._tick()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()

    def _tick(self) -> None:
        # An observer that fails must neither end the run nor hide how it ended: say so, go on.
        try:
            self.tick()
        except Exception:
            log.warning("%s failed", self._thread.name, exc_info=True)


class Progress(Periodic):
    """Records read by the source steps and the rate; for bounded inputs also how much of the
    input is read (bytes of files, records of lists or bounded Kafka reads) and the ETA.

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
        # Input done when a kind of input is first seen (a resumed run's earlier work): not
        # part of the rate.
        self._done_at_start: dict[str, int] = {}

    def line(self) -> str:
        """The progress text: source records, rate, elapsed time; share of input read, ETA."""
        read = self._counters.report(0.0).records_read
        elapsed = time.perf_counter() - self._started
        rate = read / elapsed if elapsed > 0 else 0.0
        text = f"{self._counters.flow}: {read:,} records read, {rate:,.0f}/s, {elapsed:.1f} s"
        sizes = self._counters.source_sizes()
        if not sizes:  # unbounded or unsized inputs
            return text
        parts: list[str] = []
        eta, unknown = 0.0, False
        for unit, (done, total) in sorted(sizes.items()):
            share = f" ({done / total:.0%})" if total > 0 else ""
            amount = (f"{format_bytes(done)} of {format_bytes(total)}" if unit == "bytes"
                      else f"{done:,} of {total:,} {unit}")
            parts.append(amount + share)
            progressed = done - self._done_at_start.setdefault(unit, done)
            if done >= total:
                continue
            if progressed > 0:  # the slowest kind of input decides the end
                eta = max(eta, (total - done) * elapsed / progressed)
            else:
                unknown = True
        return f"{text} | {', '.join(parts)}, ETA {'?' if unknown else _duration(eta)}"

    def bar(self, width: int = 24) -> str:
        """``[=====>     ]``: the share of a bounded input read (of the kind of input least
        read), or ``""`` for unbounded or unsized inputs."""
        shares = [done / total for done, total in self._counters.source_sizes().values()
                  if total > 0]
        if not shares:
            return ""
        filled = int(min(1.0, min(shares)) * width)
        head = ">" if filled < width else ""
        return "[" + ("=" * filled + head).ljust(width) + "] "

    def tick(self) -> None:
        if self._final:
            return
        if self._tty:  # a bar after the flow's name: where the eye looks first
            flow, _, rest = self.line().partition(": ")
            self._stream.write(f"\r{flow}: {self.bar()}{rest}\x1b[K")
            self._stream.flush()
        else:
            report = self._counters.report(0.0)
            log.info("%s", self.line(), extra=fields(
                "progress", flow=report.flow, records_read=report.records_read,
                sizes={u: {"done": d, "total": t}
                       for u, (d, t) in self._counters.source_sizes().items()}))

    def stop(self) -> None:
        super().stop()
        self._final = True
        if self._tty:  # erase the line: the summary table follows
            self._stream.write("\r\x1b[K")
            self._stream.flush()



class LiveState(Periodic):
    """Writes this process's counts to ``path`` every ``interval`` seconds (replacing the file
    whole), for the launcher of ``flowlib run -p N`` to show the progress of all processes."""

    def __init__(self, counters: Counters, path: Path, interval: float = 0.25) -> None:
        super().__init__(interval, "flowlib-live-state")
        self._counters = counters
        self._path = path
        self._tmp = path.with_name(path.name + ".tmp")

    def tick(self) -> None:
        self._tmp.write_text(json.dumps(self._counters.live_state()))
        os.replace(self._tmp, self._path)


class ProcessesProgress(Progress):
    """:class:`Progress` of a run's processes, summed from the files their :class:`LiveState`
    writes; shown once every process has written (the first file seen sets what counts as
    already done, for the rate and the ETA)."""

    def __init__(self, counters: Counters, paths: list[Path], stream: TextIO, *,
                 tty: bool) -> None:
        super().__init__(counters, stream, tty=tty)
        self._paths = paths

    def tick(self) -> None:
        states: list[dict[str, Any]] = []
        for p in self._paths:
            try:
                states.append(json.loads(p.read_text()))
            except (OSError, ValueError):  # not written yet
                return
        try:
            self._counters.show_processes(states)
        except (KeyError, IndexError, TypeError, ValueError):  # not a file of this version
            return
        super().tick()


def format_bytes(n: int) -> str:
    """``n`` bytes in B, KiB, MiB or GiB."""
    for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {name}"
    return f"{n} B"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"
