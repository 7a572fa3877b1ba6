"""Fast pickling of key runs between processes: exact round trips, plain pickle otherwise."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib.codecs._wire import Wire, WireEvents, WireRuns, _unwire, _unwire_events, wire_for

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Event:
    ts: int
    host: str
    ok: bool
    latency: float
    raw: bytes
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Sub(Event):
    pass


class EventS(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    event_ts: int
    value: float | None


@dataclass
class WithPostInit:
    x: int

    def __post_init__(self) -> None:
        self.x += 1


@dataclass
class Nested:
    xs: list[int]


@dataclass
class Timed:
    at: datetime


@dataclass
class NotInit:
    x: int
    y: int = field(init=False, default=0)


@dataclass
class Box(Generic[T]):
    item: T


def runs(*events: Any) -> list[tuple[Any, list[Any]]]:
    return [(("k", 1), list(events[:2])), ("other", list(events[2:]))]


def through_pickle(tp: object, value: list[tuple[Any, list[Any]]]) -> tuple[Any, bool]:
    """``value`` wrapped for ``tp``, pickled and loaded; and whether the fast path was taken."""
    wire = wire_for(tp)
    assert wire is not None
    wrapped = wire.wrap(value)
    assert type(wrapped) is WireRuns and wrapped == value
    fast = wire.reduce(wrapped)[0] is _unwire
    return pickle.loads(pickle.dumps((3, wrapped), protocol=5))[1], fast


def test_plain_records_of_scalars_qualify_others_do_not() -> None:
    assert wire_for(Event) is not None
    assert wire_for(EventS) is not None
    for tp in (WithPostInit, Nested, Timed, NotInit, Box[int], int, dict[str, Any],
               list[Event], Any):
        assert wire_for(tp) is None, tp


def test_runs_round_trip_exactly_through_the_fast_path() -> None:
    evs = [Event(1, "a", True, 1.5, b"\x00"), Event(-(2**63), "é", False, -0.0, b"", "n"),
           Event(2**64 - 1, "", True, math.inf, b"z")]
    back, fast = through_pickle(Event, runs(*evs))
    assert fast
    assert back == runs(*evs)
    assert all(type(e) is Event for _, es in back for e in es)
    assert [type(k) for k, _ in back] == [tuple, str]
    s = [EventS(1, None), EventS(2, 2.5), EventS(3, 1e300)]
    back, fast = through_pickle(EventS, runs(*s))
    assert fast and back == runs(*s)


def test_anything_inexact_is_pickled_as_a_plain_list() -> None:
    cases = [
        Event(1, "a", True, 2, b""),  # int where a float is declared: would come back 2.0
        Event(True, "a", True, 1.0, b""),  # bool where an int is declared
        Event(1, None, True, 1.0, b""),  # type: ignore[arg-type]  # None in a str field
        Event(2**64, "a", True, 1.0, b""),  # beyond msgpack's integers
        Sub(1, "a", True, 1.0, b""),  # a subclass
    ]
    good = Event(0, "g", False, 0.5, b"")
    for bad in cases:
        back, fast = through_pickle(Event, runs(good, bad, good))
        assert not fast, bad
        assert back == runs(good, bad, good)
        assert type(back[0][1][1]) is type(bad) and type(back[0][1][1].latency) is type(
            bad.latency)


def test_runs_of_a_subclass_only_are_pickled_as_plain_lists() -> None:
    subs = [Sub(n, "a", True, 1.0, b"") for n in range(3)]
    back, fast = through_pickle(Event, runs(*subs))
    assert not fast
    assert back == runs(*subs) and all(type(e) is Sub for _, es in back for e in es)


def test_other_shapes_are_left_alone() -> None:
    wire = wire_for(Event)
    assert wire is not None
    odd = ("not", "runs")
    assert wire.wrap(odd) is odd


@settings(deadline=None)  # a loaded machine must not fail it
@given(st.lists(st.builds(Event, st.integers(-(2**63), 2**64 - 1), st.text(), st.booleans(),
                          st.floats(), st.binary(), st.none() | st.text()), max_size=6))
def test_random_events_round_trip(evs: list[Event]) -> None:
    back, _ = through_pickle(Event, runs(*evs))
    # repr: NaN != NaN, but the same repr means the same value came back
    assert repr(back) == repr(runs(*evs))


def test_pickling_twice_encodes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """bytewax pickles each item twice (to size it, then to write it)."""
    wire = wire_for(Event)
    assert wire is not None
    calls: list[int] = []
    real = Wire.reduce

    def counted(self: Wire, runs: WireRuns) -> tuple[Any, ...]:
        calls.append(1)
        return real(self, runs)

    monkeypatch.setattr(Wire, "reduce", counted)
    wrapped = wire.wrap(runs(Event(1, "a", True, 1.5, b"")))
    first, second = pickle.dumps(wrapped), pickle.dumps(wrapped)
    assert first == second and len(calls) == 1
    assert pickle.loads(second) == runs(Event(1, "a", True, 1.5, b""))


def events_through_pickle(tp: object, value: list[Any]) -> tuple[Any, bool]:
    """A batch of events wrapped for ``tp``, pickled and loaded; and whether it took the fast
    path."""
    wire = wire_for(tp)
    assert wire is not None
    wrapped = wire.wrap_events(value)
    assert type(wrapped) is WireEvents and wrapped == value
    fast = wire.reduce_events(wrapped)[0] is _unwire_events
    return pickle.loads(pickle.dumps(("0", wrapped), protocol=5))[1], fast


def test_event_batches_round_trip_exactly_through_the_fast_path() -> None:
    evs = [Event(1, "a", True, 1.5, b"\x00"), Event(2**64 - 1, "", True, math.inf, b"z", "n")]
    back, fast = events_through_pickle(Event, evs)
    assert fast and back == evs and all(type(e) is Event for e in back)
    assert type(back) is list
    back, fast = events_through_pickle(EventS, [EventS(1, None), EventS(2, 2.5)])
    assert fast and back == [EventS(1, None), EventS(2, 2.5)]
    back, fast = events_through_pickle(Event, [])
    assert fast and back == []


def test_inexact_event_batches_are_pickled_as_plain_lists() -> None:
    good = Event(0, "g", False, 0.5, b"")
    for bad in (Event(1, "a", True, 2, b""), Sub(1, "a", True, 1.0, b""),
                Event(2**64, "a", True, 1.0, b"")):
        back, fast = events_through_pickle(Event, [good, bad])
        assert not fast, bad
        assert back == [good, bad] and type(back[1]) is type(bad)
        assert type(back[1].latency) is type(bad.latency)
    wire = wire_for(Event)
    assert wire is not None
    odd = (good,)
    assert wire.wrap_events(odd) is odd


@settings(deadline=None)
@given(st.lists(st.builds(Event, st.integers(-(2**63), 2**64 - 1), st.text(), st.booleans(),
                          st.floats(), st.binary(), st.none() | st.text()), max_size=6))
def test_random_event_batches_round_trip(evs: list[Event]) -> None:
    back, _ = events_through_pickle(Event, evs)
    assert repr(back) == repr(evs)
