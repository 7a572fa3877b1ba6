"""Sliding-window metrics and anomaly alerts on NAB time series (Numenta Anomaly Benchmark).

Each CSV file (``timestamp,value``, naive timestamps read as UTC) is one series, named after the
file (``machine_temperature_system_failure``). Readings are typed :class:`Reading` records with a
float64 value; their event time is ``ts``. Per series:

1. **Window statistics** — sliding windows of one hour every five minutes (the NAB series used
   here are sampled every five minutes, so a full window holds 12 readings): count, mean,
   sample standard deviation, 99th percentile and the latest value, computed with
   :class:`~operators.windows.SlidingWindows` and the aggregates of
   :mod:`operators.aggregations`. Written to ``window_stats.jsonl`` as :class:`WindowStats`.
2. **Anomaly score** — a second keyed step keeps a baseline per series: an exponentially
   weighted mean and variance of the window means (half-life five days). The score of a window
   is how many baseline standard deviations its mean lies from the baseline mean::

       score = (window_mean - baseline_mean) / baseline_std

3. **Alerts** — typed :class:`Alert` records in ``alerts.jsonl``. An *excursion* starts when
   ``|score| >= 1.5``; it raises one alert when it has lasted 12 hours (rule ``"sustained"``),
   or at once if ``|score| >= 6`` (rule ``"spike"``), and ends when ``|score|`` falls back
   below 1.5. No alert is raised during the first 48 hours of a series (the baseline is still
   forming), and windows with fewer than 6 readings (the edges of a series, gaps) are neither
   scored nor added to the baseline.

The CSV header is recognised exactly (``timestamp,value``): the parser returns ``None`` for it
and the ``drop_header`` step drops it, so the per-step report shows one record fewer per file.
Any other line that does not parse (bad time, non-numeric or non-finite value, wrong number of
fields) raises, and becomes a dead letter in ``dead_letters.jsonl`` naming file and line.

Event time allows one hour of disorder (``machine_temperature_system_failure`` steps back
55 minutes once, on 2014-01-07); readings later than that go to ``late.jsonl``. The watermark is
kept per key group, not per series: series whose time ranges differ must not share a key group,
or the earlier one's readings turn late (the bundled series do not; see ``docs/metrics.md``).

    flowlib run examples/metrics.py [CSV ...] [--out DIR]

With no CSV, every ``*.csv`` under ``examples/data/nab/`` is read.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from typing_extensions import override

from flowlib import Context, Flow, JsonLinesSink, Processor, TextLines
from operators.aggregations import Count, Last, Mean, Multi, Percentile, StdDev
from operators.windows import SlidingWindows, WindowResult

DATA = Path(__file__).resolve().parent / "data" / "nab"

HEADER = "timestamp,value"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
WINDOW = timedelta(hours=1)
EVERY = timedelta(minutes=5)
MAX_OUT_OF_ORDERNESS = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Reading:
    series: str
    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Statistics of one series over ``[start, end)``; ``std`` is None for a single reading."""

    series: str
    start: datetime
    end: datetime
    count: int
    mean: float
    std: float | None
    p99: float
    last: float


@dataclass(frozen=True, slots=True)
class Alert:
    """An anomaly, raised when the window ending at ``ts`` completed an excursion's rule.

    ``value`` is the latest reading of that window; ``since`` is the end of the excursion's
    first window (``ts - since`` is how long it lasted when the alert was raised).
    """

    series: str
    ts: datetime
    value: float
    score: float
    window_mean: float
    window_std: float | None
    p99: float
    baseline_mean: float
    baseline_std: float
    since: datetime
    rule: Literal["spike", "sustained"]


@dataclass(frozen=True, slots=True)
class LateReading:
    """A reading that arrived behind its key group's watermark, which is given."""

    reading: Reading
    watermark: datetime


@dataclass(frozen=True, slots=True)
class Detector:
    """The anomaly rule's parameters (the defaults are the ones documented above)."""

    half_life: timedelta = timedelta(days=5)
    threshold: float = 1.5
    sustain: timedelta = timedelta(hours=12)
    spike: float = 6.0
    warmup: timedelta = timedelta(hours=48)
    min_readings: int = 6


@dataclass(slots=True)
class Baseline:
    """Per-series state of :class:`AnomalyScore` (kept in checkpoints)."""

    mean: float
    var: float
    first: datetime
    last: datetime
    since: datetime | None = None
    alerted: bool = False


# -- parsing -------------------------------------------------------------------------------------


class CsvParser:
    """One NAB CSV line -> Reading of ``series``; ``None`` for the header; raises otherwise."""

    def __init__(self, series: str) -> None:
        self.series = series

    def __call__(self, line: str) -> Reading | None:
        if line == HEADER:
            return None
        fields = line.split(",")
        if len(fields) != 2:
            msg = f"expected 2 fields (timestamp,value), got {len(fields)}"
            raise ValueError(msg)
        ts, value = fields
        reading = float(value)
        if not math.isfinite(reading):
            msg = f"value {value!r} is not a finite number"
            raise ValueError(msg)
        return Reading(self.series, datetime.strptime(ts, TIME_FORMAT).replace(tzinfo=UTC), reading)


def drop_header(reading: Reading | None) -> list[Reading]:
    return [] if reading is None else [reading]


def series_name(path: Path) -> str:
    return path.stem


def read_step(path: Path) -> str:
    """The id of the step reading ``path`` (step ids allow letters, digits, '_' and '-')."""
    return "read_" + re.sub(r"[^A-Za-z0-9_\-]", "_", series_name(path))


def reading_series(r: Reading) -> str:
    return r.series


def reading_value(r: Reading) -> float:
    return r.value


def reading_time(r: Reading) -> datetime:
    return r.ts


# -- windows -------------------------------------------------------------------------------------

# count, mean, sample std, (p99, latest value): Multi takes up to four parts, so two are nested.
STATS = Multi(
    Count(),
    Mean(reading_value),
    StdDev(reading_value),
    Multi(Percentile(0.99, reading_value), Last(float, reading_value, by=reading_time)),
)
Stats = tuple[int, float, float, tuple[float, float]]


def window_stats(w: WindowResult[str, Stats]) -> WindowStats:
    count, mean, std, (p99, last) = w.value
    return WindowStats(
        w.key, w.start, w.end, count, mean, None if math.isnan(std) else std, p99, last
    )


def stats_series(s: WindowStats) -> str:
    return s.series


# -- anomaly score -------------------------------------------------------------------------------


class AnomalyScore(Processor[WindowStats, Alert, str, Baseline]):
    """Scores each window of a series against the series' baseline; raises alerts.

    Windows of one series reach this step in the order they closed (a key's windows fire in
    time order), so the baseline only ever moves forward; a window that does not is an error.
    """

    def __init__(self, detector: Detector = Detector()) -> None:  # frozen
        self.detector = detector

    @override
    def process(self, ctx: Context[str, Baseline, Alert], event: WindowStats) -> None:
        d = self.detector
        if event.count < d.min_readings:
            return
        b = ctx.state.get_optional()
        if b is None:
            ctx.state.set(Baseline(event.mean, 0.0, event.end, event.end))
            return
        if event.end <= b.last:
            msg = f"window ending {event.end} arrived after the window ending {b.last}"
            raise ValueError(msg)
        std = math.sqrt(b.var)
        score = (event.mean - b.mean) / std if std > 0 else 0.0
        if abs(score) >= d.threshold and event.end - b.first >= d.warmup:
            since = b.since or event.end
            b.since = since
            rule: Literal["spike", "sustained"] | None = (
                "spike" if abs(score) >= d.spike
                else "sustained" if event.end - since >= d.sustain
                else None
            )
            if rule is not None and not b.alerted:
                b.alerted = True
                ctx.emit(Alert(
                    event.series, event.end, event.last, score, event.mean, event.std,
                    event.p99, b.mean, std, since, rule,
                ))
        else:
            b.since, b.alerted = None, False
        # Exponentially weighted mean and variance, decaying with time (not with window count).
        alpha = 1.0 - 0.5 ** ((event.end - b.last) / d.half_life)
        delta = event.mean - b.mean
        b.mean += alpha * delta
        b.var = (1.0 - alpha) * (b.var + alpha * delta * delta)
        b.last = event.end
        ctx.state.set(b)


# -- the flow ------------------------------------------------------------------------------------


def arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="metrics")
    p.add_argument("csv", nargs="*", type=Path, help="NAB CSV files (default: all bundled)")
    p.add_argument("--out", type=Path, default=Path("out/metrics"))
    args = p.parse_args(argv)
    if not args.csv:
        args.csv = sorted(DATA.glob("*/*.csv"))
    names = [series_name(path) for path in args.csv]
    if len(set(names)) != len(names):
        p.error(f"two files give the same series name: {sorted(names)}")
    return args


def build(args: argparse.Namespace, detector: Detector = Detector()) -> Flow:
    flow = Flow("metrics")
    sources = [
        flow.source(TextLines(path, parse=CsvParser(series_name(path))), name=read_step(path))
        for path in args.csv
    ]
    readings = (
        flow.merge(*sources, name="readings")
        .flat_map(drop_header, name="drop_header")
        .with_event_time("ts", max_out_of_orderness=MAX_OUT_OF_ORDERNESS)
    )
    windows = readings.key_by(reading_series).process(
        SlidingWindows(WINDOW, EVERY, STATS), name="window_stats"
    )
    # The late side output is Stream[Late[str, Reading]] for mypy, but its runtime type is the
    # bare Late, which a typed function or sink of Late[str, Reading] would be refused for: a
    # lambda (not checked at build time) turns it into a record of our own.
    late = windows.late.map(lambda e: LateReading(e.event, e.watermark), name="late_readings")
    late.sink(JsonLinesSink(args.out / "late.jsonl", LateReading), name="late")
    stats = windows.map(window_stats, name="stats")
    stats.sink(JsonLinesSink(args.out / "window_stats.jsonl", WindowStats), name="stats_out")
    alerts = stats.key_by(stats_series).process(AnomalyScore(detector), name="anomaly_score")
    alerts.sink(JsonLinesSink(args.out / "alerts.jsonl", Alert), name="alerts")
    return flow


# flowlib run sets sys.argv to the script's arguments only while it loads the script, and calls
# flow() after that: keep them from load time. Importing this module builds (and parses) nothing.
_ARGV = sys.argv[1:]


def flow() -> Flow:
    """The flow ``flowlib run`` runs, built from the script's arguments."""
    return build(arguments(_ARGV))
