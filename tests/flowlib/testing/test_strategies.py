"""Strategies derived from annotations, and arrival orders within an out-of-orderness bound."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal, NamedTuple, TypedDict

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlib.codecs import codec_for
from flowlib.testing import ProcessorHarness
from flowlib.testing.strategies import event_times, from_type, out_of_order
from flowlib.time import EPOCH
from tests.flowlib.testing.processors import Reading, WindowSum

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Level(Enum):
    INFO = "info"
    ERROR = "error"


@dataclass(frozen=True)
class Event:
    user: str
    level: Level
    at: datetime
    tags: frozenset[str]
    score: float | None = None


class Point(NamedTuple):
    x: int
    y: int


class Totals(TypedDict):
    count: int
    kind: Literal["a", "b"]


class Msg(msgspec.Struct, frozen=True):
    topic: str
    size: int


@dataclass
class Tree:
    label: str
    children: list[Tree]


ANNOTATIONS: list[object] = [
    Event, Point, Totals, Msg, Tree, tuple[str, int], dict[str, list[int]], int | None,
    Reading, dict[int, int],
]


@SETTINGS
@given(data=st.data(), annotation=st.sampled_from(ANNOTATIONS))
def test_every_drawn_value_round_trips_through_its_codec(
    data: st.DataObject, annotation: object
) -> None:
    value = data.draw(from_type(annotation))
    codec = codec_for(annotation)
    assert codec.decode(codec.encode(value)) == value
    assert codec.from_arrow(codec.to_arrow([value])) == [value]


USERS = st.sampled_from(["ann", "bob"])


@SETTINGS
@given(
    event=from_type(Event, user=USERS, score=st.just(0.5)),
    point=from_type(Point, y=st.just(7)),
    totals=from_type(Totals, kind=st.just("b")),
    msg=from_type(Msg, topic=st.just("t")),
    tree=from_type(Tree, label=st.just("root")),
)
def test_field_strategies_replace_the_derived_ones(
    event: Event, point: Point, totals: Totals, msg: Msg, tree: Tree
) -> None:
    assert isinstance(event, Event) and event.user in ("ann", "bob") and event.score == 0.5
    assert isinstance(point, Point) and point.y == 7
    assert totals["kind"] == "b" and isinstance(totals["count"], int)
    assert isinstance(msg, Msg) and msg.topic == "t"
    assert isinstance(tree, Tree) and tree.label == "root"


def test_unknown_fields_are_refused() -> None:
    fields = "user, level, at, tags, score"
    with pytest.raises(TypeError, match=f"Event has no field name; its fields: {fields}"):
        from_type(Event, name=st.just("x"))
    with pytest.raises(TypeError, match="has no fields"):
        from_type(int, x=st.just(1))


@SETTINGS
@given(t=event_times(start=EPOCH, span=timedelta(minutes=5), resolution=timedelta(seconds=30)))
def test_event_times_stay_in_their_window(t: datetime) -> None:
    assert EPOCH <= t <= EPOCH + timedelta(minutes=5) and t.second in (0, 30)


READINGS = st.lists(
    from_type(Reading, sensor=st.sampled_from("ab"), ts=event_times(span=timedelta(minutes=1))),
    max_size=12,
)


@SETTINGS
@given(data=st.data(), readings=READINGS, within=st.integers(0, 20))
def test_out_of_order_stays_within_the_bound(
    data: st.DataObject, readings: list[Reading], within: int
) -> None:
    bound = timedelta(seconds=within)
    arrival = data.draw(out_of_order(readings, lambda r: r.ts, bound))
    assert sorted(arrival, key=repr) == sorted(readings, key=repr)
    latest = None
    for r in arrival:
        if latest is not None:
            assert r.ts >= latest - bound
        latest = r.ts if latest is None else max(latest, r.ts)
    # hence, with that max out-of-orderness, the engine sees no late event
    h = ProcessorHarness(
        WindowSum(), key=lambda r: r.sensor, event_time="ts", max_out_of_orderness=bound
    )
    for r in arrival:
        h.push(r)
    assert h.late == []
