"""examples/metrics.py run by the CLI on NAB series; its alerts scored against NAB's labels.

An alert is *inside* a labelled anomaly window when ``start <= alert.ts <= end`` (NAB's windows
are inclusive). Per series: precision = alerts inside a labelled window / all alerts; recall =
labelled windows holding at least one alert / all labelled windows. The measured numbers are
printed (``pytest -s``) and must equal the table in ``docs/metrics.md``.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from examples.metrics import EVERY, HEADER, WINDOW, Alert, WindowStats
from flowlib.codecs import codec_for
from flowlib.connectors.files import BATCH_BYTES
from tests.examples.cli_helpers import ROOT, run_cli, step_counts

SCRIPT = ROOT / "examples" / "metrics.py"
NAB = ROOT / "examples" / "data" / "nab"
DOC = ROOT / "docs" / "metrics.md"
MACHINE = "machine_temperature_system_failure"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def csv_files() -> list[Path]:
    return sorted(NAB.glob("*/*.csv"))


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]



@dataclass(frozen=True)
class Run:
    out: Path
    stderr: str

    def alerts(self) -> list[Alert]:
        lines = (self.out / "alerts.jsonl").read_bytes().splitlines()
        return [codec_for(Alert).decode(line) for line in lines]

    def stats(self, series: str) -> list[WindowStats]:
        codec = codec_for(WindowStats)
        tag = f'"series":"{series}"'.encode()
        lines = (self.out / "window_stats.jsonl").read_bytes().splitlines()
        return [codec.decode(line) for line in lines if tag in line]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One run of the example on every bundled series."""
    out = tmp_path_factory.mktemp("metrics")
    return Run(out, run_cli("run", SCRIPT, "--", "--out", out))


# -- scoring against NAB's labels ----------------------------------------------------------------


def labelled_windows() -> dict[str, list[tuple[datetime, datetime]]]:
    """NAB's anomaly windows per series name (the CSV file's stem)."""
    raw = json.loads((NAB / "labels" / "combined_windows.json").read_text())
    return {
        Path(key).stem: [
            (datetime.fromisoformat(a).replace(tzinfo=UTC),
             datetime.fromisoformat(b).replace(tzinfo=UTC))
            for a, b in spans
        ]
        for key, spans in raw.items()
    }


@dataclass(frozen=True)
class Score:
    series: str
    alerts: int
    inside: int
    windows: int
    detected: int

    @property
    def precision(self) -> float | None:
        return self.inside / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.windows if self.windows else None

    def row(self) -> list[str]:
        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.2f}"

        return [self.series, str(self.alerts), str(self.inside), str(self.windows),
                str(self.detected), fmt(self.precision), fmt(self.recall)]


def score(series: str, alerts: list[Alert], spans: list[tuple[datetime, datetime]]) -> Score:
    times = [a.ts for a in alerts if a.series == series]
    inside = sum(any(s <= t <= e for s, e in spans) for t in times)
    detected = sum(any(s <= t <= e for t in times) for s, e in spans)
    return Score(series, len(times), inside, len(spans), detected)


def documented_table() -> list[list[str]]:
    """The rows of the measured table in docs/metrics.md (between the two markers)."""
    text = DOC.read_text()
    body = text.split("<!-- measured:start -->")[1].split("<!-- measured:end -->")[0]
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in body.strip().splitlines()
    ]
    return rows[2:]  # after the header and the separator


def test_machine_temperature_alerts_fall_inside_the_labelled_windows(run: Run) -> None:
    spans = labelled_windows()[MACHINE]
    alerts = [a for a in run.alerts() if a.series == MACHINE]
    outside = [a.ts for a in alerts if not any(s <= a.ts <= e for s, e in spans)]
    assert alerts and outside == [], "every machine-temperature alert is in a labelled window"
    missed = [(s, e) for s, e in spans if not any(s <= a.ts <= e for a in alerts)]
    assert missed == [], "every labelled window has an alert"
    assert len(alerts) == len(spans) == 4  # one alert per anomaly, none repeated


def test_precision_and_recall_per_series_are_the_documented_ones(run: Run) -> None:
    labels = labelled_windows()
    alerts = run.alerts()
    series = [p.stem for p in csv_files()]
    assert {a.series for a in alerts} <= set(series)
    scores = [score(s, alerts, labels[s]) for s in series]
    header = ["series", "alerts", "inside", "labelled windows", "detected", "precision", "recall"]
    table = [header, *(s.row() for s in scores)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()  # shown with pytest -s
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
    total = Score("all", *(sum(getattr(s, f) for s in scores)
                           for f in ("alerts", "inside", "windows", "detected")))
    print(f"overall: precision {total.row()[5]}, recall {total.row()[6]}")
    machine = next(s for s in scores if s.series == MACHINE)
    assert (machine.precision, machine.recall) == (1.0, 1.0)
    assert documented_table() == [s.row() for s in scores], "docs/metrics.md is out of date"


def test_alerts_are_typed_and_consistent(run: Run) -> None:
    raw = read_jsonl(run.out / "alerts.jsonl")
    assert raw and all(set(r) == {f.name for f in fields(Alert)} for r in raw)
    for a in run.alerts():
        assert a.rule in ("spike", "sustained")
        assert abs(a.score) >= (6.0 if a.rule == "spike" else 1.5)
        assert a.score == pytest.approx((a.window_mean - a.baseline_mean) / a.baseline_std)
        assert a.ts - a.since >= (timedelta(0) if a.rule == "spike" else timedelta(hours=12))
        assert a.ts.tzinfo is not None and a.ts.minute % 5 == 0


# -- window statistics against an independent computation ---------------------------------------


def csv_readings(path: Path) -> list[tuple[datetime, float]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER.split(",")
    return [(datetime.strptime(t, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC), float(v))
            for t, v in rows[1:]]


def expected_windows(rows: list[tuple[datetime, float]]) -> dict[datetime, WindowStats]:
    """Sliding windows by brute force: each reading joins every aligned window covering it."""
    members: dict[datetime, list[tuple[datetime, int, float]]] = defaultdict(list)
    for i, (t, v) in enumerate(rows):
        start = EPOCH + (t - EPOCH) // EVERY * EVERY
        while start > t - WINDOW:
            members[start].append((t, i, v))
            start -= EVERY
    out = {}
    for start, ms in members.items():
        values = [v for _, _, v in ms]
        p99 = values[0] if len(values) == 1 else \
            statistics.quantiles(values, n=100, method="inclusive")[98]
        out[start] = WindowStats(
            "", start, start + WINDOW, len(values), statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else None, p99, max(ms)[2],
        )
    return out


def assert_same(got: WindowStats, want: WindowStats) -> None:
    assert (got.start, got.end, got.count) == (want.start, want.end, want.count)
    for name in ("mean", "std", "p99", "last"):
        g, w = getattr(got, name), getattr(want, name)
        assert (g is None) == (w is None), (name, got)
        if g is not None:
            assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12), (name, got, want)


def test_every_window_of_a_series_matches_an_independent_computation(run: Run) -> None:
    path = NAB / "realAWSCloudwatch" / "ec2_cpu_utilization_24ae8d.csv"
    want = expected_windows(csv_readings(path))
    got = run.stats(path.stem)
    assert len(got) == len({s.start for s in got}) == len(want) > 4000
    for s in got:
        assert_same(s, want[s.start])


def test_machine_temperature_windows_match_including_the_repeated_hour(run: Run) -> None:
    want = expected_windows(csv_readings(NAB / "realKnownCause" / f"{MACHINE}.csv"))
    got = {s.start: s for s in run.stats(MACHINE)}
    assert got.keys() == want.keys()
    # The file steps back 55 minutes after 2014-01-07 02:55: 02:00-02:55 come twice, and the
    # one-hour disorder allowance keeps both copies in their windows.
    repeated = datetime(2014, 1, 7, 2, tzinfo=UTC)
    assert got[repeated].count == want[repeated].count == 24
    spot = [min(want), max(want), repeated, repeated + timedelta(minutes=35),
            datetime(2013, 12, 16, 12, tzinfo=UTC), datetime(2014, 2, 8, 6, 5, tzinfo=UTC)]
    for start in spot:
        assert_same(got[start], want[start])


# -- nothing lost ----------------------------------------------------------------------------------


def test_every_reading_is_windowed_and_nothing_is_dead_or_late(run: Run) -> None:
    assert (run.out / "dead_letters.jsonl").read_text() == ""
    assert (run.out / "late.jsonl").read_text() == ""
    files = csv_files()
    lines = sum(len(p.read_text().splitlines()) for p in files)
    # One header per file is dropped by the drop_header step, visibly, and nothing else.
    assert step_counts(run.stderr, "drop_header") == (lines, lines - len(files), 0, 0)
    assert step_counts(run.stderr, "window_stats")[0] == lines - len(files)


def test_bad_lines_are_dead_letters_and_the_header_is_not(tmp_path: Path, run: Run) -> None:
    source = NAB / "realAWSCloudwatch" / "ec2_cpu_utilization_24ae8d.csv"
    lines = source.read_text().splitlines()
    bad = ["2014-02-14 14:31:00,abc", "not a reading", "2014-02-14 14:32:00,nan",
           "2014-02-30 00:00:00,1.0", "2014-02-14 14:33:00,1.0,2.0", "2014-02-14T14:34:00,0.1",
           "timestamp,value,"]
    mixed = [lines[0], *lines[1:4], *bad, *lines[4:]]
    path = tmp_path / source.stem / source.name  # the same series name
    path.parent.mkdir()
    path.write_text("\n".join(mixed) + "\n")
    stderr = run_cli("run", SCRIPT, "--", path, "--out", tmp_path / "o")
    dead = read_jsonl(tmp_path / "o" / "dead_letters.jsonl")
    assert [d["record"] for d in dead] == bad
    assert {d["step"] for d in dead} == {f"read_{source.stem}"}
    assert [d["origin"] for d in dead] == [f"{path}:{n}" for n in range(5, 5 + len(bad))]
    assert step_counts(stderr, f"read_{source.stem}") == (len(mixed), len(mixed) - len(bad),
                                                          len(bad), 0)
    good = len(mixed) - len(bad)
    assert step_counts(stderr, "drop_header") == (good, good - 1, 0, 0)  # only the header
    # The bad lines changed nothing: the same windows as the clean file's.
    clean = (run.out / "window_stats.jsonl").read_bytes().splitlines()
    tag = f'"series":"{source.stem}"'.encode()
    assert (tmp_path / "o" / "window_stats.jsonl").read_bytes().splitlines() == \
        [line for line in clean if tag in line]


def test_a_reading_beyond_the_disorder_allowance_goes_to_the_late_output(tmp_path: Path) -> None:
    # 45,000 readings (> one source batch), then one from the first hour again: by then the
    # watermark is far past it, so it is late; one 30 minutes back is not.
    start = datetime(2014, 1, 1, tzinfo=UTC)
    times = [start + i * timedelta(minutes=5) for i in range(45_000)]
    rows = [(t, 50.0 + (i % 7) / 10) for i, t in enumerate(times)]
    rows += [(times[-1] - timedelta(minutes=30), 99.0), (start + timedelta(minutes=10), 1.0)]
    path = tmp_path / "synthetic.csv"
    path.write_text(HEADER + "\n" + "".join(
        f"{t.strftime('%Y-%m-%d %H:%M:%S')},{v}\n" for t, v in rows))
    assert path.stat().st_size > BATCH_BYTES
    stderr = run_cli("run", SCRIPT, "--", path, "--out", tmp_path / "o")
    late = read_jsonl(tmp_path / "o" / "late.jsonl")
    assert [r["reading"] for r in late] == [
        {"series": "synthetic", "ts": "2014-01-01T00:10:00Z", "value": 1.0}]
    assert step_counts(stderr, "window_stats")[3] == 1
    counts = {s["count"] for s in read_jsonl(tmp_path / "o" / "window_stats.jsonl")}
    assert 13 in counts, "the reading 30 minutes back joined its (otherwise full) windows"
