"""The operators of examples/log_agg.py under the harness, and the harness against the engine."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlib import Flow, Sink
from flowlib.testing import ProcessorHarness, assert_outputs, run_flow
from flowlib.testing.properties import (
    assert_engine_agrees,
    assert_order_insensitive,
    assert_snapshot_restore_identity,
)
from flowlib.testing.strategies import event_times, from_type, out_of_order
from flowlib.time import EPOCH
from operators.aggregations import Count
from operators.templates import TemplateMatcher
from operators.windows import TumblingWindows, WindowResult

with mock.patch.object(sys, "argv", ["log_agg.py"]):  # the script parses its arguments
    from examples import log_agg
    from examples.log_agg import MINUTE, LateEvent, LogEvent, MinuteCount, TemplateCount

T = TypeVar("T")
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
APACHE = log_agg.DATA / "Apache"
MATCHER = TemplateMatcher.from_csv(APACHE / "Apache_2k.log_templates.csv")
DELAY = timedelta(seconds=5)  # the example's default --max-delay
GROUPS = 128  # the example flow's key groups (Flow's default)
T0 = datetime(2005, 12, 4, 4, 0, tzinfo=UTC)

TemplateKey = tuple[str, str]
Windows = ProcessorHarness[LogEvent, WindowResult[Any, int], Any, Any]


def by_template(key_groups: int = 1) -> Windows:
    """The example's per-(level, template) step: one-minute event-time windows of counts."""
    return ProcessorHarness(
        TumblingWindows[LogEvent, int, int, TemplateKey](MINUTE, Count()),
        key=lambda e: (e.level, e.template_id), key_type=tuple[str, str],
        event_time="ts", max_out_of_orderness=DELAY, key_groups=key_groups,
        step="count_per_template",
    )


def by_minute() -> Windows:
    """The example's per-minute step: all events under one key."""
    return ProcessorHarness(
        TumblingWindows[LogEvent, int, int, str](MINUTE, Count()),
        key=lambda e: "all", key_type=str, event_time="ts", max_out_of_orderness=DELAY,
        step="count_per_minute",
    )


def example_flow(log: Path | None = None) -> Flow:
    return log_agg.build(log_agg.arguments([] if log is None else [str(log)]))


def sink_of(flow: Flow, item_type: type[T]) -> Sink[T]:
    (sink,) = [n.sink for n in flow.sinks if n.sink.item_type is item_type]
    return cast(Sink[T], sink)


def real_events(lines: int) -> list[LogEvent]:
    parse = log_agg.Parser("apache", MATCHER)
    events = []
    for line in (APACHE / "Apache_2k.log").read_text().splitlines()[:lines]:
        with contextlib.suppress(ValueError):
            events.append(parse(line))
    return events


def feed(h: Windows, events: list[LogEvent]) -> list[WindowResult[Any, int]]:
    for e in events:
        h.push(e)
    h.end_of_input()
    return h.outputs


EVENTS = st.lists(
    from_type(
        LogEvent,
        level=st.sampled_from(["notice", "error"]),
        template_id=st.sampled_from(MATCHER.event_ids),
        ts=event_times(T0, timedelta(minutes=4)),
    ),
    max_size=20,
)


# --- the parser ---------------------------------------------------------------------------


def test_parser_types_lines_and_rejects_what_it_cannot_match() -> None:
    parse = log_agg.Parser("apache", MATCHER)
    event = parse("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/w.p")
    assert event == LogEvent(
        datetime(2005, 12, 4, 4, 47, 44, tzinfo=UTC), "notice", "E2",
        "workerEnv.init() ok /etc/httpd/conf/w.p",
    )
    with pytest.raises(ValueError, match="no template matches"):
        parse("[Sun Dec 04 04:47:44 2005] [error] nothing like a template")
    with pytest.raises(ValueError):
        parse("garbage")


def test_unparsable_lines_become_dead_letters_of_the_parse_step(tmp_path: Path) -> None:
    log = tmp_path / "apache.log"
    log.write_text(
        "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/x\n"
        "garbage\n"
        "[Sun Dec 04 04:48:10 2005] [notice] workerEnv.init() ok /etc/y\n"
    )
    flow = example_flow(log)
    result = run_flow(flow)  # the file source is read as it is
    assert [(d.step, d.record) for d in result.dead_letters] == [("parse", "garbage")]
    e2 = MATCHER.template_of("E2")
    assert result.outputs(sink_of(flow, TemplateCount)) == [
        TemplateCount(T0 + timedelta(minutes=47), "notice", "E2", e2, 1),
        TemplateCount(T0 + timedelta(minutes=48), "notice", "E2", e2, 1),
    ]


# --- the windowed counts --------------------------------------------------------------------


def test_windows_close_as_the_watermark_passes_the_minute() -> None:
    h = by_template()
    at = T0 + timedelta(minutes=10)
    h.push(LogEvent(at + timedelta(seconds=10), "error", "E3", "x"))
    h.push(LogEvent(at + timedelta(seconds=50), "error", "E3", "y"))
    assert h.state[("error", "E3")] == {(at - EPOCH) // timedelta(microseconds=1): 2}
    # the minute closes once the watermark (max event time - 5 s) reaches its end
    assert h.push(LogEvent(at + timedelta(seconds=64), "notice", "E2", "z")) == []
    [closed] = h.push(LogEvent(at + timedelta(seconds=65), "notice", "E2", "z"))
    assert (closed.key, closed.start, closed.end, closed.value) == (
        ("error", "E3"), at, at + MINUTE, 2
    )
    h.push(LogEvent(at + timedelta(seconds=30), "error", "E3", "late"))
    assert [x.event.message for x in h.late] == ["late"]
    assert [w.value for w in h.end_of_input()] == [2]


def test_real_data_counts_add_up() -> None:
    events = real_events(60)
    templates, minutes = by_template(), by_minute()
    counted = sum(w.value for w in feed(templates, events))
    assert counted + len(templates.late) == len(events)
    assert sum(w.value for w in feed(minutes, events)) + len(minutes.late) == len(events)


@SETTINGS
@given(events=EVENTS, split=st.integers(0, 20))
def test_windows_survive_snapshot_and_restore(events: list[LogEvent], split: int) -> None:
    # tuple keys and dict[int, int] state go through the Arrow checkpoint and back
    assert_snapshot_restore_identity(by_template, events, split)
    assert_snapshot_restore_identity(by_minute, events, split)


@SETTINGS
@given(data=st.data(), events=EVENTS)
def test_counts_do_not_depend_on_order_within_the_max_delay(
    data: st.DataObject, events: list[LogEvent]
) -> None:
    shuffled = data.draw(out_of_order(events, lambda e: e.ts, DELAY))
    in_order = sorted(events, key=lambda e: e.ts)
    assert_order_insensitive(by_template, in_order, shuffled)
    assert_order_insensitive(by_minute, in_order, shuffled)


@SETTINGS
@given(events=EVENTS)
def test_harness_and_engine_agree_on_each_count(events: list[LogEvent]) -> None:
    assert_engine_agrees(lambda: by_template(key_groups=4), events, workers=2)
    assert_engine_agrees(by_minute, events)


@SETTINGS
@given(events=EVENTS)
def test_the_example_flow_gives_what_the_harnessed_operators_give(events: list[LogEvent]) -> None:
    flow = example_flow()
    result = run_flow(flow, {"parse": events})
    templates, minutes = by_template(key_groups=GROUPS), by_minute()
    expected_templates = [
        TemplateCount(w.start, w.key[0], w.key[1], MATCHER.template_of(w.key[1]), w.value)
        for w in feed(templates, events)
    ]
    expected_minutes = [MinuteCount(w.start, w.value) for w in feed(minutes, events)]
    expected_late = [
        LateEvent(x.event.ts, x.watermark, x.event.level, x.event.template_id, x.event.message)
        for x in templates.late
    ]
    assert_outputs(result.outputs(sink_of(flow, TemplateCount)), expected_templates, ordered=False)
    assert_outputs(result.outputs(sink_of(flow, MinuteCount)), expected_minutes, ordered=False)
    assert_outputs(result.outputs(sink_of(flow, LateEvent)), expected_late, ordered=False)
    assert_outputs(
        result.outputs(sink_of(flow, LogEvent)), [x.event for x in minutes.late], ordered=False
    )
    assert result.dead_letters == []


def test_the_example_flow_survives_a_crash_on_real_data() -> None:
    events = real_events(50)
    flow = example_flow()
    plain = run_flow(flow, {"parse": events})
    resumed = run_flow(flow, {"parse": events}, crash_after=len(events) // 2, workers=2)
    assert resumed.crashed
    for item_type in (TemplateCount, MinuteCount, LateEvent, LogEvent):
        sink: Sink[Any] = sink_of(flow, item_type)
        assert_outputs(resumed.outputs(sink), plain.outputs(sink), ordered=False)
