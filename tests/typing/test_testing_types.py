"""Types of the testing kit, asserted by mypy (``assert_type``) and run by pytest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, assert_type

from hypothesis import strategies as st
from typing_extensions import override

from flowlib import Context, DeadLetter, Flow, ListSink, Processor, Stream
from flowlib.engine import RunReport
from flowlib.testing import (
    EngineRun,
    FlowResult,
    FlowRunner,
    HarnessFactory,
    HarnessSnapshot,
    ProcessorHarness,
    StateView,
    TestSource,
    run_flow,
)
from flowlib.testing.plugin import _Factory
from flowlib.testing.strategies import event_times, from_type, out_of_order
from flowlib.time import EPOCH, Late, TimerKind
from operators.aggregate import Count, Keyed


@dataclass(frozen=True)
class LogLine:
    ts: datetime
    level: str


@dataclass(frozen=True)
class LevelCount:
    level: str
    count: int


class CountLevels(Processor[LogLine, LevelCount, str, int]):
    @override
    def process(self, ctx: Context[str, int, LevelCount], event: LogLine) -> None:
        ctx.state.set(ctx.state.get(0) + 1)
        ctx.emit(LevelCount(ctx.key, ctx.state.get(0)))


class Shout(Processor[str, str]):
    @override
    def process(self, ctx: Context[None, None, str], event: str) -> None:
        ctx.emit(event.upper())


LINE = LogLine(EPOCH, "error")


def test_harness_types_follow_the_processor() -> None:
    h = ProcessorHarness(CountLevels(), key=lambda e: e.level, event_time="ts")
    assert_type(h, ProcessorHarness[LogLine, LevelCount, str, int])
    assert_type(h.push(LINE), list[LevelCount])
    assert_type(h.push_many([LINE]), list[LevelCount])
    assert_type(h.advance_watermark(EPOCH), list[LevelCount])
    assert_type(h.advance_processing_time(timedelta(seconds=1)), list[LevelCount])
    assert_type(h.end_of_input(), list[LevelCount])
    assert_type(h.outputs, list[LevelCount])
    assert_type(h.dead_letters, list[DeadLetter])
    assert_type(h.late, list[Late[str, LogLine]])
    assert_type(h.state, StateView[str, int])
    assert_type(h.state["error"], int)
    assert_type(dict(h.state), dict[str, int])
    assert_type(h.timers, list[tuple[str, datetime, TimerKind]])
    assert_type(h.watermark, datetime | None)
    snap = h.snapshot()
    assert_type(snap, HarnessSnapshot)
    h.restore(snap)
    assert h.outputs == [LevelCount("error", 1), LevelCount("error", 2)]


def test_generic_operators_and_stateless_processors() -> None:
    counts = ProcessorHarness(Count[str, str](), key=lambda w: w, key_type=str)
    assert_type(counts, ProcessorHarness[str, Keyed[str, int], str, int])
    assert_type(counts.end_of_input(), list[Keyed[str, int]])
    shout = ProcessorHarness(Shout())
    assert_type(shout, ProcessorHarness[str, str, None, None])
    assert_type(shout.push("a"), list[str])
    engine = shout.run_engine(["a"])
    assert_type(engine, EngineRun[str, str, None])
    assert_type(engine.outputs, list[str])
    assert_type(engine.report, RunReport)
    assert engine.outputs == ["A"]


def test_flow_results_are_typed_by_their_sinks() -> None:
    flow = Flow("typed")
    lines = TestSource(LogLine, [LINE])
    assert_type(lines, TestSource[LogLine])
    stream = flow.source(lines)
    assert_type(stream, Stream[LogLine])
    out = ListSink(LevelCount)
    stream.key_by(lambda e: e.level).process(CountLevels()).sink(out)
    result = run_flow(flow, {lines: [LINE]})
    assert_type(result, FlowResult)
    assert_type(result.outputs(out), list[LevelCount])
    assert_type(result.outputs("listsink"), list[Any])
    assert_type(result.dead_letters, list[DeadLetter])
    assert_type(result.report, RunReport)
    assert result.outputs(out) == [LevelCount("error", 1)]


def test_fixture_types(tmp_path: Path) -> None:
    harness: HarnessFactory = _Factory()
    h = harness(CountLevels(), key=lambda e: e.level)
    assert_type(h, ProcessorHarness[LogLine, LevelCount, str, int])
    runner = FlowRunner(tmp_path)
    flow = Flow("fixture")
    src = TestSource(int)
    flow.source(src).sink(ListSink(int))
    assert_type(runner(flow, {src: [1]}), FlowResult)


def test_strategy_types() -> None:
    assert_type(from_type(LogLine), st.SearchStrategy[LogLine])
    assert_type(from_type(LogLine, level=st.just("x")), st.SearchStrategy[LogLine])
    assert_type(from_type(int), st.SearchStrategy[int])
    assert_type(event_times(), st.SearchStrategy[datetime])
    orders = out_of_order([LINE], lambda e: e.ts, timedelta(0))
    assert_type(orders, st.SearchStrategy[list[LogLine]])
