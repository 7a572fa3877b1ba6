"""Property tests: random TYPES (annotation trees), then random values of each type.

For every generated type the codec must round-trip values through JSON (bytes and builtins) and
Arrow exactly, and give equal key bytes to equal values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import functools
import itertools
import typing
import uuid
from typing import Annotated, Any, Literal, NamedTuple, Union

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlib.codecs import codec_for, describe
from flowlib.codecs._strategies import strategy_for

Strategy = st.SearchStrategy[Any]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Rank(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Tree:
    label: str
    children: list[Tree]


class Expr(msgspec.Struct):
    op: Literal["+", "*"]
    args: list[Expr | int]


NAIVE = Annotated[dt.datetime, msgspec.Meta(tz=False)]
AWARE_TIME = Annotated[dt.time, msgspec.Meta(tz=True)]

# Leaves grouped by the JSON kind msgspec dispatches unions on: a valid union takes at most one
# member of each group.
INT_LIKE: list[object] = [int, Rank, Literal[1, 2]]
STR_LIKE: list[object] = [
    str,
    bytes,
    dt.datetime,
    NAIVE,
    dt.date,
    dt.time,
    AWARE_TIME,
    dt.timedelta,
    decimal.Decimal,
    uuid.UUID,
    Color,
    Literal["a", "b"],
]
OTHER_LEAVES: list[object] = [bool, float, Any]
LEAVES = INT_LIKE + STR_LIKE + OTHER_LEAVES
HASHABLE: list[object] = [
    int,
    str,
    bool,
    float,
    bytes,
    dt.date,
    dt.datetime,
    decimal.Decimal,
    uuid.UUID,
    Color,
    Literal["a", "b"],
    tuple[int, str],
    frozenset[int],
    int | None,
]
KEYS: list[object] = [str, int, Color, Literal["x", "y"]]
RECURSIVE: list[object] = [Tree, Expr, list[Tree] | None]

_names = itertools.count()
_TypedDict: Any = typing.TypedDict
_NamedTuple: Any = NamedTuple


def _union(members: list[object]) -> object:
    return Union.__getitem__(tuple(members))


def _record(kind: str, field_types: list[object], flag: bool) -> object:
    name = f"{kind}{next(_names)}"
    fields = [(f"f{i}", t) for i, t in enumerate(field_types)]
    if kind == "Dataclass":
        return dataclasses.make_dataclass(name, fields, frozen=flag)
    if kind == "TypedDict":
        return _TypedDict(name, dict(fields), total=flag)
    if kind == "NamedTuple":
        return _NamedTuple(name, fields)
    return msgspec.defstruct(name, fields, array_like=flag)


def records(inner: Strategy) -> Strategy:
    return st.builds(
        _record,
        st.sampled_from(["Dataclass", "TypedDict", "NamedTuple", "Struct"]),
        st.lists(inner, min_size=1, max_size=4),
        st.booleans(),
    )


@st.composite
def unions(draw: st.DrawFn, inner: Strategy) -> object:
    groups: list[Strategy] = [
        st.sampled_from(INT_LIKE),
        st.sampled_from(STR_LIKE),
        st.just(float),
        st.just(bool),
        st.just(None),
        inner.map(list.__class_getitem__),
        inner.map(lambda t: dict.__class_getitem__((str, t))),
    ]
    chosen = draw(st.lists(st.sampled_from(groups), min_size=2, max_size=4, unique_by=id))
    return _union([draw(group) for group in chosen])


def extend(inner: Strategy) -> Strategy:
    hashable = st.sampled_from(HASHABLE)
    return st.one_of(
        inner.map(list.__class_getitem__),
        inner.map(lambda t: tuple.__class_getitem__((t, ...))),
        st.lists(inner, min_size=1, max_size=3).map(lambda ts: tuple.__class_getitem__(tuple(ts))),
        hashable.map(set.__class_getitem__),
        hashable.map(frozenset.__class_getitem__),
        st.tuples(st.sampled_from(KEYS), inner).map(dict.__class_getitem__),
        inner.map(lambda t: _union([t, None])),
        records(inner),
        unions(inner),
    )


ANNOTATIONS: Strategy = st.recursive(st.sampled_from(LEAVES), extend, max_leaves=6) | (
    st.sampled_from(RECURSIVE)
)

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@functools.cache
def values_of(annotation: object) -> Strategy:
    return st.lists(strategy_for(describe(annotation)), min_size=1, max_size=4)


@SETTINGS
@given(data=st.data(), annotation=ANNOTATIONS)
def test_json_round_trip(data: st.DataObject, annotation: object) -> None:
    codec = codec_for(annotation)
    for value in data.draw(values_of(annotation)):
        raw = codec.encode(value)
        decoded = codec.decode(raw)
        assert decoded == value
        builtins = codec.to_builtins(value)
        assert msgspec.json.decode(raw) == msgspec.json.decode(msgspec.json.encode(builtins))
        assert codec.decode_builtins(builtins) == value
        assert codec.key_bytes(decoded) == codec.key_bytes(value)


@SETTINGS
@given(data=st.data(), annotation=ANNOTATIONS)
def test_arrow_round_trip(data: st.DataObject, annotation: object) -> None:
    codec = codec_for(annotation)
    values = data.draw(values_of(annotation))
    array = codec.to_arrow(values)
    assert array.type == codec.arrow_type
    back = codec.from_arrow(array)
    assert back == values
    assert [codec.key_bytes(v) for v in back] == [codec.key_bytes(v) for v in values]


@SETTINGS
@given(annotation=ANNOTATIONS)
def test_description_and_codec_are_cached(annotation: object) -> None:
    assert describe(annotation) is describe(annotation)
    assert codec_for(annotation) is codec_for(annotation)
