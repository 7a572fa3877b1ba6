"""JSON decode/encode per type family, epoch numbers, decode_builtins."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import typing
import uuid
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
import orjson
import pytest

from flowlib.codecs import Codec, DecodeError, EncodeError, codec_for

UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))
NaiveDateTime = Annotated[dt.datetime, msgspec.Meta(tz=False)]


class Level(enum.Enum):
    INFO = "info"
    WARN = "warn"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0


@dataclasses.dataclass
class Event:
    ts: dt.datetime
    host: str
    level: Literal["info", "warn", "error"]
    tags: list[str] = dataclasses.field(default_factory=list)
    point: Point | None = None


@dataclasses.dataclass
class Tree:
    value: int
    children: list[Tree] = dataclasses.field(default_factory=list)


class Movie(typing.TypedDict, total=False):
    title: str
    year: int


class Pair(NamedTuple):
    left: int
    right: str = "r"


class User(msgspec.Struct, rename="camel"):
    user_name: str
    age: int = 0


class Span(msgspec.Struct):
    start: dt.datetime
    length: dt.timedelta


FAMILIES: list[tuple[object, object, bytes]] = [
    (bool, True, b"true"),
    (int, -5, b"-5"),
    (float, 1.5, b"1.5"),
    (str, "h\u00e9", '"h\u00e9"'.encode()),
    (bytes, b"\x00\x01", b'"AAE="'),
    (dt.datetime, dt.datetime(2024, 5, 1, 12, tzinfo=PLUS2), b'"2024-05-01T12:00:00+02:00"'),
    (dt.datetime, dt.datetime(2024, 5, 1, 12, tzinfo=UTC), b'"2024-05-01T12:00:00Z"'),
    (NaiveDateTime, dt.datetime(2024, 5, 1, 12, 0, 0, 5), b'"2024-05-01T12:00:00.000005"'),
    (dt.datetime, dt.datetime(2024, 5, 1, 12), b'"2024-05-01T12:00:00"'),
    (dt.date, dt.date(2024, 5, 1), b'"2024-05-01"'),
    (dt.time, dt.time(12, 30), b'"12:30:00"'),
    (dt.timedelta, dt.timedelta(seconds=90.5), b'"PT90.5S"'),
    (dt.timedelta, dt.timedelta(days=-1), b'"-P1D"'),
    (decimal.Decimal, decimal.Decimal("1.10"), b'"1.10"'),
    (uuid.UUID, uuid.UUID(int=1), b'"00000000-0000-0000-0000-000000000001"'),
    (Level, Level.WARN, b'"warn"'),
    (Priority, Priority.HIGH, b"2"),
    (Literal["a", "b"], "b", b'"b"'),
    (int | None, None, b"null"),
    (int | str, "x", b'"x"'),
    (list[int], [1, 2], b"[1,2]"),
    (tuple[int, ...], (1, 2), b"[1,2]"),
    (tuple[int, str], (1, "a"), b'[1,"a"]'),
    (set[int], {3}, b"[3]"),
    (frozenset[str], frozenset({"a"}), b'["a"]'),
    (dict[str, int], {"a": 1}, b'{"a":1}'),
    (dict[int, str], {1: "a"}, b'{"1":"a"}'),
    (dict[Level, int], {Level.INFO: 1}, b'{"info":1}'),
    (Point, Point(1), b'{"x":1,"y":0}'),
    (Movie, {"title": "Heat"}, b'{"title":"Heat"}'),
    (Pair, Pair(1), b'[1,"r"]'),
    (User, User("ann"), b'{"userName":"ann","age":0}'),
    (Tree, Tree(1, [Tree(2)]), b'{"value":1,"children":[{"value":2,"children":[]}]}'),
    (Any, {"a": [1, 2.5, None]}, b'{"a":[1,2.5,null]}'),
]


@pytest.mark.parametrize(("annotation", "value", "expected"), FAMILIES)
def test_encode_and_decode(annotation: object, value: object, expected: bytes) -> None:
    codec = codec_for(annotation)
    assert codec.encode(value) == expected
    decoded = codec.decode(expected)
    assert decoded == value
    assert type(decoded) is type(value)
    assert codec.decode(expected.decode()) == value
    assert orjson.loads(orjson.dumps(codec.to_builtins(value))) == orjson.loads(expected)
    assert codec.decode_builtins(orjson.loads(expected)) == value


def test_codec_for_is_cached_and_typed() -> None:
    codec: Codec[Point] = codec_for(Point)
    assert codec_for(Point) is codec
    assert codec.annotation is Point
    assert codec_for(list[int]) is codec_for(list[int])


def test_dataclass_defaults_and_factories() -> None:
    codec = codec_for(Event)
    event = codec.decode(b'{"ts": "2024-05-01T00:00:00Z", "host": "h", "level": "info"}')
    assert event == Event(dt.datetime(2024, 5, 1, tzinfo=UTC), "h", "info")
    assert event.tags == [] and event.point is None


def test_struct_rename_and_defaults() -> None:
    assert codec_for(User).decode(b'{"userName": "bo"}') == User("bo", 0)


def test_decimal_accepts_numbers() -> None:
    assert codec_for(decimal.Decimal).decode(b"1.25") == decimal.Decimal("1.25")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"1700000000", dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (b"1700000000.25", dt.datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)),
        (b'"2023-11-14T22:13:20Z"', dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ],
)
def test_datetime_from_epoch_seconds_is_utc(raw: bytes, expected: dt.datetime) -> None:
    decoded = codec_for(dt.datetime).decode(raw)
    assert decoded == expected and decoded.utcoffset() == dt.timedelta(0)


def test_timedelta_from_seconds_or_iso_duration() -> None:
    codec = codec_for(dt.timedelta)
    assert codec.decode(b"90.5") == dt.timedelta(seconds=90.5)
    assert codec.decode(b'"PT1M30S"') == dt.timedelta(seconds=90)
    assert codec.decode(b'"P1DT2H"') == dt.timedelta(days=1, hours=2)


def test_epoch_numbers_nested_everywhere() -> None:
    codec = codec_for(dict[str, list[dt.datetime | None]])
    decoded = codec.decode(b'{"a": [0, null, "1970-01-01T00:00:01Z"]}')
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert decoded == {"a": [epoch, None, epoch + dt.timedelta(seconds=1)]}
    span = codec_for(Span).decode(b'{"start": 60, "length": 1.5}')
    assert span == Span(epoch + dt.timedelta(minutes=1), dt.timedelta(seconds=1.5))


def test_epoch_numbers_in_recursive_types() -> None:
    @dataclasses.dataclass
    class Stamp:
        at: dt.datetime

    codec = codec_for(list[Stamp])
    assert codec.decode(b'[{"at": 0}]') == [Stamp(dt.datetime(1970, 1, 1, tzinfo=UTC))]


def test_naive_datetime_rejects_epoch_numbers() -> None:
    with pytest.raises(DecodeError) as info:
        codec_for(NaiveDateTime).decode(b"0")
    assert (info.value.expected, info.value.found) == ("datetime (without timezone)", "int")


def test_decoding_is_strict_otherwise() -> None:
    for annotation, raw in [(int, b'"5"'), (bool, b'"true"'), (int, b"5.0"), (str, b"5")]:
        with pytest.raises(DecodeError):
            codec_for(annotation).decode(raw)


def test_decode_builtins_accepts_json_parsed_objects() -> None:
    assert codec_for(dict[int, str]).decode_builtins({"1": "a"}) == {1: "a"}
    assert codec_for(bytes).decode_builtins("AAE=") == b"\x00\x01"
    codec = codec_for(Event)
    event = codec.decode_builtins({"ts": 0, "host": "h", "level": "warn", "point": {"x": 2}})
    assert event == Event(dt.datetime(1970, 1, 1, tzinfo=UTC), "h", "warn", [], Point(2))


def test_decode_builtins_errors_carry_json_raw() -> None:
    with pytest.raises(DecodeError) as info:
        codec_for(Point).decode_builtins({"x": "1"})
    assert info.value.raw == b'{"x":"1"}'
    assert (info.value.path, info.value.expected, info.value.found) == ("$.x", "int", "str")
    with pytest.raises(DecodeError) as info:
        codec_for(Point).decode_builtins({"x": object()})
    assert info.value.raw.startswith(b"{'x': <object object")


def test_encode_is_compact_without_newline() -> None:
    raw = codec_for(Event).encode(Event(dt.datetime(2024, 1, 1, tzinfo=UTC), "h", "info"))
    assert raw == (
        b'{"ts":"2024-01-01T00:00:00Z","host":"h","level":"info","tags":[],"point":null}'
    )


def test_encode_of_unencodable_value_raises_encode_error() -> None:
    with pytest.raises(EncodeError):
        anything: Codec[Any] = codec_for(Any)
        anything.encode(object())


def test_nan_is_written_as_null() -> None:
    assert codec_for(float).encode(float("nan")) == b"null"
