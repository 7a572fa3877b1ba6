"""Per-step record counters of one run, and the report built from them."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from functools import reduce
from typing import Any

from flowlib.engine._live_stats import LATENCY_BUCKETS, CheckpointTally, Histogram, StateProbe

__all__ = ["Counters", "RunReport", "StepCounts"]


@dataclass
class StepCounts:
    """Records a step received, produced, and sent to the dead-letter output."""

    step: str
    kind: str
    records_in: int = 0
    records_out: int = 0
    dead_letters: int = 0
    late: int = 0

    @property
    def dropped(self) -> int:
        """Records neither passed on nor dead-lettered nor late: filtered, or absorbed in state."""
        return self.records_in - self.records_out - self.dead_letters - self.late


@dataclass
class RunReport:
    """What a run did, per step, in build order; ``wall_seconds`` of the whole run."""

    flow: str
    steps: list[StepCounts] = field(default_factory=list)
    wall_seconds: float = 0.0

    def step(self, step_id: str) -> StepCounts:
        """The counts of step ``step_id``."""
        for s in self.steps:
            if s.step == step_id:
                return s
        msg = f"no step {step_id!r} in flow {self.flow!r}"
        raise KeyError(msg)

    @property
    def dead_letters(self) -> int:
        """Dead letters of all steps."""
        return sum(s.dead_letters for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able data (:meth:`from_json` reads it back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunReport:
        """A report from :meth:`to_json`'s data (of another process of the run)."""
        return cls(data["flow"], [StepCounts(**s) for s in data["steps"]], data["wall_seconds"])

    def merged(self, other: RunReport) -> RunReport:
        """This report plus ``other`` (e.g. of another process of the same run)."""
        steps = [
            StepCounts(a.step, a.kind, a.records_in + b.records_in,
                       a.records_out + b.records_out, a.dead_letters + b.dead_letters,
                       a.late + b.late)
            for a, b in zip(self.steps, other.steps, strict=True)
        ]
        return RunReport(self.flow, steps, max(self.wall_seconds, other.wall_seconds))

    @property
    def records_read(self) -> int:
        """Records the sources read (dead letters of parsing included)."""
        return sum(s.records_in for s in self.steps if s.kind == "source")

    def table(self) -> str:
        """A fixed-width table, one line per step: in / out / dead letters / late counts, and
        records in per second of wall time."""
        wall = self.wall_seconds
        rows = [("step", "kind", "in", "out", "dead letters", "late", "in/s")]
        rows += [
            (s.step, s.kind, str(s.records_in), str(s.records_out), str(s.dead_letters),
             str(s.late), f"{s.records_in / wall:,.0f}" if wall > 0 else "-")
            for s in self.steps
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for r in rows:
            cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
            cells += [r[i].rjust(widths[i]) for i in range(2, len(r))]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: wall time, records read and their rate."""
        wall, read = self.wall_seconds, self.records_read
        rate = f" ({read / wall:,.0f}/s)" if wall > 0 else ""
        return f"{self.flow}: done in {wall:.2f} s, {read:,} records read{rate}"


class Counters:
    """Thread-safe counters shared by the worker threads of one process.

    Updated once per batch, never per event, so the lock costs nothing measurable. Beside the
    counts: each step's batch latencies while :attr:`timed` is set (by the metrics server),
    the checkpoints taken (:attr:`checkpoints`) and the key groups observers read
    (:attr:`groups`).
    """

    def __init__(self, flow: str, steps: list[tuple[str, str]]) -> None:
        self._lock = threading.Lock()
        self._report = RunReport(flow, [StepCounts(s, k) for s, k in steps])
        self._index = {s: i for i, (s, _) in enumerate(steps)}
        self._sizes: dict[tuple[str, str], tuple[int, int, str]] = {}
        self.timed = False
        self._latency = {s: Histogram(LATENCY_BUCKETS) for s, _ in steps}
        self.checkpoints = CheckpointTally()
        self.groups = StateProbe()

    @property
    def flow(self) -> str:
        return self._report.flow

    def source_size(
        self, step: str, partition: str, size: tuple[int, int] | None, unit: str
    ) -> None:
        """Record ``(done, total)`` ``unit``s of a source partition (for progress)."""
        if size is not None:
            with self._lock:
                self._sizes[step, partition] = (size[0], size[1], unit)

    def source_sizes(self) -> dict[str, tuple[int, int]]:
        """``(done, total)`` per unit, summed over the partitions that reported a size."""
        out: dict[str, tuple[int, int]] = {}
        with self._lock:
            for done, total, unit in self._sizes.values():
                d, t = out.get(unit, (0, 0))
                out[unit] = (d + done, t + total)
        return out

    def start(self) -> float:
        """The time a batch starts, for :meth:`add`'s ``started`` (0 when not :attr:`timed`)."""
        return time.perf_counter() if self.timed else 0.0

    def add(
        self, step: str, records_in: int, records_out: int, dead: int, late: int = 0,
        started: float = 0.0,
    ) -> None:
        """Count a batch of ``step``; ``started`` (from :meth:`start`) times it."""
        seconds = time.perf_counter() - started if started else 0.0
        with self._lock:
            c = self._report.steps[self._index[step]]
            c.records_in += records_in
            c.records_out += records_out
            c.dead_letters += dead
            c.late += late
            if started:
                self._latency[step].observe(seconds)

    def live_state(self) -> dict[str, Any]:
        """This process's counts and source sizes as JSON-able data, for a launcher showing
        the progress of its processes (:meth:`show_processes`)."""
        report = self.report(0.0)
        with self._lock:
            sizes = [[step, part, *v] for (step, part), v in self._sizes.items()]
        return {"report": report.to_json(), "sizes": sizes}

    def show_processes(self, states: list[dict[str, Any]]) -> None:
        """Set the counts to the sums of processes' :meth:`live_state` (their partitions are
        their own: sizes are kept per partition)."""
        if not states:
            return
        total = reduce(RunReport.merged, [RunReport.from_json(st["report"]) for st in states])
        with self._lock:
            if [s.step for s in total.steps] != [s.step for s in self._report.steps]:
                msg = "the processes' steps are not this flow's"
                raise ValueError(msg)
            self._report.steps = total.steps
            for st in states:
                for step, part, done, total_size, unit in st["sizes"]:
                    self._sizes[step, part] = (int(done), int(total_size), str(unit))

    def latencies(self) -> dict[str, Histogram]:
        """Each step's batch latencies so far (empty histograms unless :attr:`timed`)."""
        with self._lock:
            return {s: h.copy() for s, h in self._latency.items()}

    def report(self, wall_seconds: float) -> RunReport:
        with self._lock:
            steps = [StepCounts(**vars(s)) for s in self._report.steps]
        return RunReport(self._report.flow, steps, wall_seconds)
