"""Hypothesis strategies derived from annotations (this module imports hypothesis).

:func:`from_type` builds on the same type description the codecs use
(:func:`flowlib.codecs.describe`), so every event, key or state type a flow can carry gets a
generator, and every generated value round-trips through the codecs and checkpoints.

>>> from dataclasses import dataclass
>>> from datetime import datetime
>>> @dataclass(frozen=True)
... class Login:
...     user: str
...     ok: bool
...     at: datetime
>>> from hypothesis import given, settings
>>> @settings(max_examples=20)
... @given(from_type(Login, user=st.sampled_from(["ann", "bob"])))
... def test_login(login: Login) -> None:
...     assert isinstance(login, Login) and login.user in ("ann", "bob")
>>> test_login()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

import msgspec
from hypothesis import strategies as st

from flowlib.codecs import describe
from flowlib.codecs._strategies import strategy_for
from flowlib.codecs.types import RecordType
from flowlib.time import EPOCH

__all__ = ["event_times", "from_type", "out_of_order"]

T = TypeVar("T")


@overload
def from_type(tp: type[T], /, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[T]: ...
@overload
def from_type(tp: object, /, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]: ...
def from_type(tp: object, /, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Values of the annotation ``tp``; ``fields`` replace the strategies of fields of a record
    type (dataclass, TypedDict, NamedTuple, msgspec Struct), e.g. to draw keys from a few values.

    >>> from hypothesis import find
    >>> find(from_type(tuple[str, int]), lambda pair: pair[1] > 5)
    ('', 6)
    """
    node = describe(tp)
    if not fields:
        return strategy_for(node)
    if not isinstance(node, RecordType):
        msg = f"field strategies given for {node!r}, which has no fields"
        raise TypeError(msg)
    known = [f.name for f in node.fields]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        msg = f"{node.name} has no field {', '.join(unknown)}; its fields: {', '.join(known)}"
        raise TypeError(msg)
    if not node.recursive:
        # A given field is always drawn from its strategy, even one that has a default.
        required = {
            f.name: fields.get(f.name, strategy_for(f.type)) for f in node.fields
            if f.required or f.name in fields
        }
        optional = {
            f.name: strategy_for(f.type) for f in node.fields
            if not f.required and f.name not in fields
        }
        return st.fixed_dictionaries(required, optional=optional).map(node.build)
    # A recursive record: draw it whole, then replace the given fields.
    return st.tuples(strategy_for(node), st.fixed_dictionaries(fields)).map(
        lambda pair: _replace(node, pair[0], pair[1])
    )


def _replace(node: RecordType, value: Any, changes: dict[str, Any]) -> Any:
    if node.kind == "dataclass":
        return dataclasses.replace(value, **changes)
    if node.kind == "namedtuple":
        return value._replace(**changes)
    if node.kind == "struct":
        return msgspec.structs.replace(value, **changes)
    return {**value, **changes}


def event_times(
    start: datetime = EPOCH, span: timedelta = timedelta(hours=1),
    resolution: timedelta = timedelta(seconds=1),
) -> st.SearchStrategy[datetime]:
    """UTC datetimes in ``[start, start + span]``, whole multiples of ``resolution`` apart:
    event times that collide and fall into shared windows often enough to be interesting.

    >>> from hypothesis import find
    >>> find(event_times(span=timedelta(minutes=1)), lambda t: t.second > 30)
    datetime.datetime(1970, 1, 1, 0, 0, 31, tzinfo=datetime.timezone.utc)
    """
    steps = span // resolution
    return st.integers(0, steps).map(lambda n: start + n * resolution)


def out_of_order(
    events: Sequence[T], time_of: Callable[[T], datetime], within: timedelta
) -> st.SearchStrategy[list[T]]:
    """Arrival orders of ``events`` in which no event comes after one more than ``within``
    younger than itself: out of order by at most ``within`` in event time.

    With ``within`` at most the stream's ``max_out_of_orderness`` no event is ever behind the
    watermark, so event-time windows get the same events in any such order (shrinks towards
    time order).

    >>> from hypothesis import find
    >>> def at(s: int) -> datetime:
    ...     return EPOCH + timedelta(seconds=s)
    >>> find(out_of_order([3, 1, 2], at, timedelta(seconds=2)), lambda order: order[0] != 1)
    [2, 1, 3]
    """
    ordered = sorted(events, key=time_of)
    jitter = max(0, int(within / timedelta(microseconds=1)))
    us = timedelta(microseconds=1)

    def arrange(delays: list[int]) -> list[T]:
        keyed = sorted(
            range(len(ordered)), key=lambda i: (time_of(ordered[i]) + delays[i] * us, i)
        )
        return [ordered[i] for i in keyed]

    n = len(ordered)
    return st.lists(st.integers(0, jitter), min_size=n, max_size=n).map(arrange)
