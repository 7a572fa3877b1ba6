"""The pytest plugin in a fresh project: fixtures with no conftest, readable typed diffs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PYPROJECT = """
[project]
name = "sensors"
version = "0.0.1"
dependencies = ["flowlib"]

[tool.pytest.ini_options]
pythonpath = ["src"]
filterwarnings = ["error"]
"""

PACKAGE = '''
from dataclasses import dataclass

from flowlib import Context, Flow, ListSink, Processor
from flowlib.testing import TestSource


@dataclass(frozen=True)
class Reading:
    sensor: str
    value: float


@dataclass(frozen=True)
class Peak:
    sensor: str
    value: float


class MaxPerSensor(Processor[Reading, Peak, str, float]):
    def process(self, ctx: Context[str, float, Peak], event: Reading) -> None:
        if event.value < 0:
            raise ValueError(f"negative reading {event.value}")
        ctx.state.set(max(ctx.state.get(event.value), event.value))

    def on_eof(self, ctx: Context[str, float, Peak]) -> None:
        ctx.emit(Peak(ctx.key, ctx.state.get(0.0)))


def peaks_flow() -> tuple[Flow, TestSource[Reading], ListSink[Peak]]:
    flow = Flow("peaks")
    readings, peaks = TestSource(Reading), ListSink(Peak)
    flow.source(readings).key_by(lambda r: r.sensor).process(MaxPerSensor()).sink(peaks)
    return flow, readings, peaks
'''

PASSING = '''
from flowlib.engine import run
from sensors import MaxPerSensor, Peak, Reading, peaks_flow

READINGS = [Reading("a", 1.0), Reading("b", 5.0), Reading("a", 3.0)]


def test_harness_fixture(harness):
    h = harness(MaxPerSensor(), key=lambda r: r.sensor)
    h.push_many(READINGS)
    assert dict(h.state) == {"a": 3.0, "b": 5.0}
    assert h.end_of_input() == [Peak("a", 3.0), Peak("b", 5.0)]


def test_flow_runner_fixture_with_two_workers_and_a_crash(flow_runner):
    flow, readings, peaks = peaks_flow()
    plain = flow_runner(flow, {readings: READINGS})
    crashed = flow_runner(flow, {readings: READINGS}, crash_after=2, workers=2)
    assert crashed.crashed
    assert sorted(crashed.outputs(peaks), key=repr) == sorted(plain.outputs(peaks), key=repr)


def test_recovery_dir_fixture(recovery_dir):
    flow, readings, peaks = peaks_flow()
    run(flow, recovery_dir=recovery_dir)
    assert (recovery_dir / "flowlib-manifest.json").exists()


def test_kafka_broker_fixture(kafka_broker):
    host, port = kafka_broker.split(",")[0].rsplit(":", 1)
    assert host and port.isdigit()
'''

FAILING = '''
from sensors import MaxPerSensor, Peak, Reading


def test_wrong_expectation(harness):
    h = harness(MaxPerSensor(), key=lambda r: r.sensor)
    h.push_many([Reading("a", 3.0), Reading("a", -1.0)])
    assert h.end_of_input() == [Peak("a", 4.0)]
'''


def test_fixtures_work_in_a_fresh_project_and_failures_show_typed_diffs(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "src" / "sensors").mkdir(parents=True)
    (tmp_path / "src" / "sensors" / "__init__.py").write_text(PACKAGE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_passing.py").write_text(textwrap.dedent(PASSING))
    (tmp_path / "tests" / "test_failing.py").write_text(textwrap.dedent(FAILING))
    assert not list(tmp_path.rglob("conftest.py"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-W", "error",
         "--rootdir", str(tmp_path), "tests"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    for name in (
        "test_harness_fixture", "test_flow_runner_fixture_with_two_workers_and_a_crash",
        "test_recovery_dir_fixture", "test_kafka_broker_fixture",
    ):
        assert f"PASSED tests/test_passing.py::{name}" in out, out
    assert "FAILED tests/test_failing.py::test_wrong_expectation" in out, out
    # the typed diff, field by field
    assert "[1 x Peak] == [1 x Peak]" in out, out
    assert "outputs differ (left: 1 item, right: 1 item)" in out, out
    assert "left[0] != right[0] (Peak):" in out, out
    assert ".value: 3.0 != 4.0" in out, out
    # and why: the harness's dead letters
    assert "flowlib harnesses" in out, out
    assert "MaxPerSensor: 1 output(s), 1 dead letter(s), 0 late event(s)" in out, out
    assert "dead letter: MaxPerSensor: ValueError: negative reading -1.0" in out, out
