"""Arrow types and exact Arrow round trips per type family."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import typing
import uuid
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pytest

from flowlib.codecs import DecodeError, EncodeError, codec_for

UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))
NaiveDateTime = Annotated[dt.datetime, msgspec.Meta(tz=False)]
AwareTime = Annotated[dt.time, msgspec.Meta(tz=True)]


class Level(enum.Enum):
    INFO = "info"
    WARN = "warn"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float


@dataclasses.dataclass(kw_only=True)
class Labeled:
    name: str
    point: Point | None = None


@dataclasses.dataclass
class Tree:
    value: int
    children: list[Tree]


@dataclasses.dataclass
class Forest:
    name: str
    trees: list[Tree]


class Movie(typing.TypedDict, total=False):
    title: str
    year: int
    rating: float | None


class Pair(NamedTuple):
    left: int
    right: str


class User(msgspec.Struct, rename="camel"):
    user_name: str
    joined: dt.date


def large(t: Any) -> Any:
    return pa.list_(t)


FAMILIES: list[tuple[object, Any, list[Any]]] = [
    (bool, pa.bool_(), [True, False]),
    (int, pa.int64(), [0, -(2**63), 2**63 - 1]),
    (float, pa.float64(), [0.0, -1.5, 1e300]),
    (str, pa.large_string(), ["", "h\u00e9", "\x00"]),
    (bytes, pa.large_binary(), [b"", b"\x00\xff"]),
    (
        dt.datetime,
        pa.timestamp("us", tz="UTC"),
        [dt.datetime(2024, 1, 1, 1, 2, 3, 4, tzinfo=PLUS2)],
    ),
    (NaiveDateTime, pa.timestamp("us"), [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59)]),
    (dt.date, pa.date32(), [dt.date(1, 1, 1), dt.date(2024, 2, 29)]),
    (dt.time, pa.time64("us"), [dt.time(0), dt.time(23, 59, 59, 999999)]),
    (AwareTime, pa.large_string(), [dt.time(1, 2, tzinfo=PLUS2)]),
    (dt.timedelta, pa.duration("us"), [dt.timedelta(0), dt.timedelta(days=-3, microseconds=7)]),
    (decimal.Decimal, pa.large_string(), [decimal.Decimal("1.10"), decimal.Decimal("-1E+30")]),
    (uuid.UUID, pa.large_string(), [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]),
    (Level, pa.large_string(), [Level.INFO, Level.WARN]),
    (Priority, pa.int64(), [Priority.LOW, Priority.HIGH]),
    (Literal["a", "b"], pa.large_string(), ["a", "b"]),
    (Literal[1, 2], pa.int64(), [2, 1]),
    (Literal[True], pa.bool_(), [True]),
    (Literal[1, "a"], pa.large_string(), [1, "a"]),
    (int | None, pa.int64(), [1, None]),
    (int | str, pa.large_string(), [1, "1"]),
    (int | str | None, pa.large_string(), [1, "1", None]),
    (Any, pa.large_string(), [None, 1, [1, "a"], {"k": 2.5}]),
    (list[int], large(pa.int64()), [[], [1, 2]]),
    (list[int | None] | None, large(pa.int64()), [[None, 1], None, []]),
    (set[str], large(pa.large_string()), [set(), {"a", "b"}]),
    (frozenset[int], large(pa.int64()), [frozenset({1})]),
    (tuple[int, ...], large(pa.int64()), [(), (1, 2)]),
    (
        tuple[int, str],
        pa.struct([("f0", pa.int64()), ("f1", pa.large_string())]),
        [(1, "a"), (2, "b")],
    ),
    (tuple[()], pa.struct([]), [(), ()]),
    (dict[str, int], pa.map_(pa.large_string(), pa.int64()), [{}, {"a": 1, "b": 2}]),
    (dict[int, list[str]], pa.map_(pa.int64(), large(pa.large_string())), [{1: ["x"]}]),
    (dict[Level, int], pa.map_(pa.large_string(), pa.int64()), [{Level.WARN: 1}]),
    (Point, pa.struct([("x", pa.int64()), ("y", pa.float64())]), [Point(1, 2.0)]),
    (Point | None, pa.struct([("x", pa.int64()), ("y", pa.float64())]), [None, Point(1, 2.0)]),
    (
        Labeled,
        pa.struct(
            [
                ("name", pa.large_string()),
                ("point", pa.struct([("x", pa.int64()), ("y", pa.float64())])),
            ]
        ),
        [Labeled(name="a"), Labeled(name="b", point=Point(0, 0.5))],
    ),
    (
        Movie,
        pa.struct(
            [("title", pa.large_string()), ("year", pa.int64()), ("rating", pa.large_string())]
        ),
        [{}, {"title": "Heat", "year": 1995}, {"rating": None}, {"rating": 7.5}],
    ),
    (Pair, pa.struct([("left", pa.int64()), ("right", pa.large_string())]), [Pair(1, "a")]),
    (
        User,
        pa.struct([("userName", pa.large_string()), ("joined", pa.date32())]),
        [User("ann", dt.date(2020, 1, 1))],
    ),
    (Tree, pa.large_string(), [Tree(1, [Tree(2, [])])]),
    (
        Forest,
        pa.struct([("name", pa.large_string()), ("trees", large(pa.large_string()))]),
        [Forest("f", [Tree(1, [])])],
    ),
]


@pytest.mark.parametrize(("annotation", "arrow_type", "values"), FAMILIES)
def test_arrow_type_and_round_trip(annotation: object, arrow_type: Any, values: list[Any]) -> None:
    codec = codec_for(annotation)
    assert codec.arrow_type == arrow_type
    array = codec.to_arrow(values)
    assert array.type == arrow_type
    back = codec.from_arrow(array)
    assert back == values
    assert [type(v) for v in back] == [type(v) for v in values]
    assert codec.from_arrow(pa.chunked_array([array, array])) == values + values
    assert codec.from_arrow(array.slice(1)) == values[1:]


def test_json_columns_hold_encode_output() -> None:
    codec = codec_for(Tree)
    tree = Tree(1, [Tree(2, [])])
    assert codec.to_arrow([tree]).to_pylist() == [codec.encode(tree).decode()]


def test_typeddict_absent_and_none_stay_distinct() -> None:
    codec = codec_for(Movie)
    array = codec.to_arrow([{}, {"rating": None}])
    assert isinstance(array, pa.StructArray)
    column = array.field("rating").to_pylist()
    assert column == [None, "null"]


def test_nulls_inside_nullable_parents() -> None:
    codec = codec_for(list[Point | None])
    values: list[list[Point | None]] = [[None, Point(1, 1.0)], [], [Point(2, 2.0)]]
    assert codec.from_arrow(codec.to_arrow(values)) == values


def test_naive_datetime_refused_by_utc_column() -> None:
    with pytest.raises(EncodeError, match="naive datetime"):
        codec_for(list[dt.datetime]).to_arrow([[dt.datetime(2024, 1, 1)]])
    with pytest.raises(EncodeError, match="aware datetime"):
        codec_for(NaiveDateTime).to_arrow([dt.datetime(2024, 1, 1, tzinfo=UTC)])
    with pytest.raises(EncodeError, match="aware time"):
        codec_for(dt.time).to_arrow([dt.time(1, tzinfo=UTC)])


def test_int_beyond_int64_is_an_encode_error() -> None:
    with pytest.raises(EncodeError) as info:
        codec_for(Point).to_arrow([Point(2**64, 0.0)])
    assert info.value.path == "$.x"


def test_from_arrow_casts_compatible_arrays() -> None:
    codec = codec_for(list[str] | None)
    assert codec.from_arrow(pa.array([["a"], None], type=pa.list_(pa.string()))) == [["a"], None]


def test_from_arrow_rejects_nulls_where_type_has_no_none() -> None:
    array = pa.array([{"x": 1, "y": None}], type=codec_for(Point).arrow_type)
    with pytest.raises(DecodeError) as info:
        codec_for(Point).from_arrow(array)
    assert (info.value.path, info.value.expected, info.value.found) == ("$.y", "float", "null")
    with pytest.raises(DecodeError):
        codec_for(int).from_arrow(pa.array([1, None]))


def test_from_arrow_rejects_values_outside_enum_or_literal() -> None:
    with pytest.raises(DecodeError) as info:
        codec_for(Level).from_arrow(pa.array(["info", "debug"], type=pa.large_string()))
    assert info.value.found == '"debug"'
    with pytest.raises(DecodeError):
        codec_for(Literal["a"]).from_arrow(pa.array(["b"], type=pa.large_string()))


def test_from_arrow_rejects_incompatible_arrays() -> None:
    with pytest.raises(DecodeError) as info:
        codec_for(int).from_arrow(pa.array(["x"]))
    assert info.value.found == "Arrow string"


class Perm(enum.IntFlag):
    READ = 1
    WRITE = 2


def test_flag_combinations_round_trip() -> None:
    codec = codec_for(list[Perm])
    values = [[Perm.READ | Perm.WRITE, Perm.READ]]
    assert codec.decode(codec.encode(values[0])) == values[0]
    assert codec.from_arrow(codec.to_arrow(values)) == values
