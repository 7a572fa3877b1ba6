"""Building flows: types flow through, and steps that do not fit fail before any event runs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from typing_extensions import override

from flowlib import Context, Flow, FlowBuildError, ListSink, ListSource, Processor
from operators.aggregate import Count


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str


@dataclass(frozen=True)
class Metric:
    name: str
    value: float


class Upper(Processor[LogLine, str]):
    @override
    def process(self, ctx: Context[None, None, str], event: LogLine) -> None:
        ctx.emit(event.message.upper())


class Total(Processor[Metric, float, str, float]):
    @override
    def process(self, ctx: Context[str, float, float], event: Metric) -> None:
        ctx.state.set(ctx.state.get(0.0) + event.value)


def test_processor_on_wrong_stream_fails_at_build_naming_both_steps() -> None:
    flow = Flow("f")
    metrics = flow.source(ListSource([Metric("x", 1.0)], Metric), name="metrics")
    with pytest.raises(FlowBuildError) as err:
        metrics.process(Upper(), name="shout")  # type: ignore[arg-type]
    assert str(err.value) == (
        "step 'shout' (Upper) consumes LogLine but its input step 'metrics' produces Metric"
    )


def test_function_with_wrong_parameter_type_fails_at_build() -> None:
    def level_of(line: LogLine) -> str:
        return line.level

    flow = Flow("f")
    metrics = flow.source(ListSource([Metric("x", 1.0)], Metric), name="metrics")
    with pytest.raises(FlowBuildError, match=r"'map_level_of' .* takes LogLine .* 'metrics'"):
        metrics.map(level_of)  # type: ignore[arg-type]


def test_map_result_type_is_checked_downstream() -> None:
    def to_metric(line: LogLine) -> Metric:
        return Metric(line.level, 1.0)

    flow = Flow("f")
    lines = flow.source(ListSource([LogLine("info", "m")], LogLine), name="lines")
    metrics = lines.map(to_metric, name="to_metric")
    with pytest.raises(FlowBuildError, match=r"step 'upper' \(Upper\) consumes LogLine .* "
                       r"'to_metric' produces Metric"):
        metrics.process(Upper(), name="upper")  # type: ignore[arg-type]


def test_key_type_mismatch_fails_at_build() -> None:
    flow = Flow("f")
    metrics = flow.source(ListSource([Metric("x", 1.0)], Metric), name="metrics")
    keyed = metrics.key_by(lambda m: len(m.name), key_type=int)
    with pytest.raises(FlowBuildError, match=r"expects keys of type str .* keyed by int"):
        keyed.process(Total(), name="total")  # type: ignore[arg-type]


def test_keyed_processor_on_unkeyed_stream_fails() -> None:
    flow = Flow("f")
    metrics = flow.source(ListSource([Metric("x", 1.0)], Metric), name="metrics")
    with pytest.raises(FlowBuildError, match="keeps keyed state: key the stream"):
        metrics.process(Total(), name="total")  # type: ignore[arg-type]


def test_sink_type_mismatch_fails() -> None:
    flow = Flow("f")
    metrics = flow.source(ListSource([Metric("x", 1.0)], Metric), name="metrics")
    with pytest.raises(FlowBuildError, match="sink 'out' accepts LogLine but step 'metrics'"):
        metrics.sink(ListSink(LogLine), name="out")  # type: ignore[arg-type]


def test_duplicate_step_id_is_refused() -> None:
    flow = Flow("f")
    nums = flow.source(ListSource([1], int), name="nums")
    nums.key_by(lambda x: x, key_type=int).process(Count(), name="count")
    with pytest.raises(FlowBuildError, match="step id 'count' is used twice"):
        nums.key_by(lambda x: x, key_type=int).process(Count(), name="count")


def test_merge_of_different_types_is_refused() -> None:
    flow = Flow("f")
    a = flow.source(ListSource([1], int), name="a")
    b = flow.source(ListSource(["x"], str), name="b")
    with pytest.raises(FlowBuildError, match="cannot merge step 'b' \\(str\\) with step 'a'"):
        a.merge(b)  # type: ignore[arg-type]


def test_stateful_steps_are_recorded_in_build_order() -> None:
    flow = Flow("f")
    nums = flow.source(ListSource([1], int), name="nums")
    nums.key_by(lambda x: x % 2, key_type=int).process(Count(), name="parity").sink(ListSink())
    nums.key_by(lambda x: x, key_type=int).process(Count(), name="each").sink(ListSink())
    assert flow.stateful_steps() == ["parity", "each"]


def test_bad_names_are_refused() -> None:
    with pytest.raises(FlowBuildError, match="flow name 'a b'"):
        Flow("a b")
    flow = Flow("ok")
    with pytest.raises(FlowBuildError, match=r"step id 'x\.y'"):
        flow.source(ListSource([1], int), name="x.y")
