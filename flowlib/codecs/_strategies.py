"""Hypothesis strategies for the values of a described type (imports hypothesis: test-only).

``strategy_for(describe(T))`` draws values that every codec of ``T`` round-trips exactly: ints
within int64, finite floats, datetimes between 1900 and 2200 with whole-minute UTC offsets (aware
unless the type says naive), timedeltas within a million days, finite Decimals. Collections are
kept small. ``flowlib.testing.strategies.from_type`` is meant to build on this.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from hypothesis import strategies as st

from flowlib.codecs._nodes import (
    AnyType,
    BoolType,
    BytesType,
    DateTimeType,
    DateType,
    DecimalType,
    DictType,
    EnumType,
    FloatType,
    IntType,
    ListType,
    LiteralType,
    Node,
    NoneType,
    RecordType,
    RefType,
    SetType,
    StrType,
    TimeDeltaType,
    TimeType,
    TupleType,
    UnionType,
    UUIDType,
    VarTupleType,
)

__all__ = ["strategy_for"]

Strategy = st.SearchStrategy[Any]

_INT64: Final = 2**63
_MAX_SIZE: Final = 4
_OFFSETS: Final[st.SearchStrategy[dt.tzinfo]] = st.integers(-18 * 60, 18 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
_EARLIEST: Final = dt.datetime(1900, 1, 1)
_LATEST: Final = dt.datetime(2200, 1, 1)
_SCALARS: Final[dict[type[Node], Strategy]] = {
    NoneType: st.none(),
    BoolType: st.booleans(),
    IntType: st.integers(-_INT64, _INT64 - 1),
    FloatType: st.floats(allow_nan=False, allow_infinity=False),
    StrType: st.text(max_size=12),
    BytesType: st.binary(max_size=12),
    DateType: st.dates(),
    TimeDeltaType: st.timedeltas(
        min_value=dt.timedelta(days=-1_000_000), max_value=dt.timedelta(days=1_000_000)
    ),
    DecimalType: st.decimals(allow_nan=False, allow_infinity=False),
    UUIDType: st.uuids(),
}
_JSON: Final = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-_INT64, _INT64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def strategy_for(node: Node) -> Strategy:
    """Values of the type ``node`` describes."""
    return _Builder().build(node)


class _Builder:
    def __init__(self) -> None:
        self._records: dict[object, Strategy] = {}

    def build(self, node: Node) -> Strategy:
        scalar = _SCALARS.get(type(node))
        if scalar is not None:
            return scalar
        match node:
            case AnyType():
                return _JSON
            case DateTimeType(tz):
                if tz is False:
                    return st.datetimes(_EARLIEST, _LATEST)
                return st.datetimes(_EARLIEST, _LATEST, timezones=_OFFSETS)
            case TimeType(tz):
                return st.times(timezones=_OFFSETS) if tz else st.times()
            case EnumType(cls):
                return st.sampled_from(cls)
            case LiteralType(values):
                return st.sampled_from(values)
            case ListType(item):
                return st.lists(self.build(item), max_size=_MAX_SIZE)
            case SetType(item, frozen):
                make = st.frozensets if frozen else st.sets
                return make(self.build(item), max_size=_MAX_SIZE)
            case VarTupleType(item):
                return st.lists(self.build(item), max_size=_MAX_SIZE).map(tuple)
            case TupleType(items):
                return st.tuples(*(self.build(i) for i in items))
            case DictType(key, value):
                return st.dictionaries(self.build(key), self.build(value), max_size=_MAX_SIZE)
            case UnionType(members):
                return st.one_of(*(self.build(m) for m in members))
            case RefType(annotation):
                return st.deferred(lambda: self._records[annotation])
            case RecordType():
                return self._record(node)
        raise AssertionError(f"no strategy for {node!r}")

    def _record(self, node: RecordType) -> Strategy:
        # register first: fields may refer back to this record
        self._records[node.annotation] = st.nothing()
        required = {f.name: self.build(f.type) for f in node.fields if f.required}
        optional = {f.name: self.build(f.type) for f in node.fields if not f.required}
        strategy = st.fixed_dictionaries(required, optional=optional).map(node.build)
        self._records[node.annotation] = strategy
        return strategy
