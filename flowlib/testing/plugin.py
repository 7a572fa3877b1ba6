"""The pytest plugin of flowlib, registered through the ``pytest11`` entry point.

Installing flowlib gives every test suite, with no conftest code:

- ``harness``: builds a :class:`~flowlib.testing.ProcessorHarness` (same arguments); when the
  test fails, the dead letters and late events of the harnesses it built are shown;
- ``flow_runner``: :func:`~flowlib.testing.run_flow` with recovery directories kept under the
  test's ``tmp_path``;
- ``recovery_dir``: a fresh recovery directory path for :func:`flowlib.engine.run`;
- ``kafka_broker`` and any other fixture of :mod:`flowlib.testing.kafka_broker`, when that
  module exists (see :func:`pytest_configure`);
- a typed diff, field by field, when ``assert actual == expected`` fails on lists of
  dataclasses or named tuples.

>>> from flowlib import Context, Processor
>>> class Echo(Processor[str, str]):
...     def process(self, ctx: Context[None, None, str], event: str) -> None:
...         ctx.emit(event)
>>> factory = _Factory()
>>> h = factory(Echo())
>>> h.push("x"), factory.created == [h]
(['x'], True)
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from flowlib.testing._diff import diff_outputs, is_record

if TYPE_CHECKING:
    from flowlib.testing._harness import HarnessFactory, ProcessorHarness
    from flowlib.testing._run import FlowRunner

__all__ = [
    "KAFKA_BROKER_MODULE",
    "flow_runner",
    "harness",
    "pytest_assertrepr_compare",
    "pytest_configure",
    "pytest_runtest_makereport",
    "recovery_dir",
]

KAFKA_BROKER_MODULE = "flowlib.testing.kafka_broker"
"""Registered as a pytest plugin too when importable: its fixtures (a Kafka test broker) become
available to every suite, like this module's."""

_HARNESSES = pytest.StashKey[list["ProcessorHarness[Any, Any, Any, Any]"]]()


def pytest_configure(config: pytest.Config) -> None:
    """Register :data:`KAFKA_BROKER_MODULE` as a plugin when it exists (the Kafka hook)."""
    if config.pluginmanager.has_plugin(KAFKA_BROKER_MODULE):
        return
    try:
        found = importlib.util.find_spec(KAFKA_BROKER_MODULE) is not None
    except ImportError:
        found = False
    if found:
        module = importlib.import_module(KAFKA_BROKER_MODULE)
        config.pluginmanager.register(module, KAFKA_BROKER_MODULE)


class _Factory:
    """Builds harnesses and remembers them for the failure report."""

    def __init__(self) -> None:
        self.created: list[ProcessorHarness[Any, Any, Any, Any]] = []

    def __call__(self, processor: Any, **options: Any) -> Any:
        from flowlib.testing._harness import ProcessorHarness

        h: ProcessorHarness[Any, Any, Any, Any] = ProcessorHarness(processor, **options)
        self.created.append(h)
        return h


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> HarnessFactory:
    """Builds a :class:`~flowlib.testing.ProcessorHarness`: ``harness(processor, key=...)``."""
    factory = _Factory()
    request.node.stash[_HARNESSES] = factory.created
    built: HarnessFactory = factory
    return built


@pytest.fixture
def flow_runner(tmp_path: Path) -> FlowRunner:
    """Runs a flow with test inputs: ``flow_runner(flow, {source: events}, workers=2,
    crash_after=10)`` returns a :class:`~flowlib.testing.FlowResult`."""
    from flowlib.testing._run import FlowRunner

    return FlowRunner(tmp_path / "flowlib")


@pytest.fixture
def recovery_dir(tmp_path: Path) -> Path:
    """A recovery directory path (not yet created) for ``flowlib.engine.run``."""
    return tmp_path / "recovery"


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    """Field-by-field diff for ``==`` on lists (or tuples) of records."""
    if op != "==" or not _sequence(left) or not _sequence(right):
        return None
    assert isinstance(left, list | tuple) and isinstance(right, list | tuple)
    if not any(is_record(x) for x in (*left, *right)):
        return None
    lines = diff_outputs(left, right, labels=("left", "right"))
    if not lines:
        return None
    return [f"{_short(left)} == {_short(right)}", *lines]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, show what the test's harnesses sent to dead letters and late outputs."""
    report = yield
    harnesses = item.stash.get(_HARNESSES, [])
    if report.failed and call.when == "call" and harnesses:
        text = _harness_summary(harnesses)
        if text:
            report.sections.append(("flowlib harnesses", text))
    return report


def _harness_summary(harnesses: list[ProcessorHarness[Any, Any, Any, Any]]) -> str:
    lines: list[str] = []
    for h in harnesses:
        head = (
            f"{h.step}: {len(h.outputs)} output(s), {len(h.dead_letters)} dead letter(s), "
            f"{len(h.late)} late event(s)"
        )
        lines.append(head)
        lines += [
            f"  dead letter: {d.step}: {d.error_type}: {d.error} (record {d.record})"
            for d in h.dead_letters[:10]
        ]
        lines += [
            f"  late: key {e.key!r} at {e.event_time.isoformat()} behind watermark "
            f"{e.watermark.isoformat()}: {e.event!r}"
            for e in h.late[:10]
        ]
    return "\n".join(lines)


def _sequence(value: object) -> bool:
    return isinstance(value, list | tuple) and not is_record(value)


def _short(value: list[Any] | tuple[Any, ...]) -> str:
    if not value:
        return "[]"
    kinds = sorted({type(x).__name__ for x in value})
    return f"[{len(value)} x {' | '.join(kinds)}]"

