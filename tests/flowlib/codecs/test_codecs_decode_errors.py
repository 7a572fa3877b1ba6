"""DecodeError: path, expected, found, raw and detail."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import pickle
from typing import Literal

import msgspec
import pytest

from flowlib.codecs import DecodeError, codec_for


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Meta:
    tags: list[str]
    labels: dict[str, int]


@dataclasses.dataclass
class Record:
    ts: dt.datetime
    level: Literal["notice", "error"]
    count: int
    meta: Meta | None = None


@dataclasses.dataclass
class Node:
    name: str
    children: list[Node]


class Cat(msgspec.Struct, tag=True):
    lives: int


class Dog(msgspec.Struct, tag=True):
    good: bool


def error(annotation: object, raw: bytes | str) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec_for(annotation).decode(raw)
    return info.value


def fields(e: DecodeError) -> tuple[str, str, str]:
    return (e.path, e.expected, e.found)


GOOD = b'{"ts": "2024-01-01T00:00:00Z", "level": "error", "count": 1}'


def test_good_record_decodes() -> None:
    assert codec_for(Record).decode(GOOD).count == 1


def test_wrong_type() -> None:
    raw = b'{"ts": "2024-01-01T00:00:00Z", "level": 5, "count": 1}'
    e = error(Record, raw)
    assert fields(e) == ("$.level", '"notice" | "error"', "int")
    assert e.raw == raw
    assert str(e) == 'at $.level: expected "notice" | "error", found int'


def test_bad_literal_shows_the_value() -> None:
    e = error(Record, b'{"ts": "2024-01-01T00:00:00Z", "level": "warn", "count": 1}')
    assert fields(e) == ("$.level", '"notice" | "error"', '"warn"')


def test_missing_field() -> None:
    e = error(Record, b'{"ts": "2024-01-01T00:00:00Z", "level": "error"}')
    assert fields(e) == ("$.count", "int", "missing field")


def test_null_where_not_optional() -> None:
    e = error(Record, b'{"ts": null, "level": "error", "count": 1}')
    assert fields(e) == ("$.ts", "datetime", "null")


def test_bad_datetime_text_has_detail() -> None:
    e = error(Record, b'{"ts": "yesterday", "level": "error", "count": 1}')
    assert fields(e) == ("$.ts", "datetime", '"yesterday"')
    assert e.detail == "Invalid RFC3339 encoded datetime"


def test_nested_path_through_optional_record() -> None:
    raw = b'{"ts": 0, "level": "error", "count": 1, "meta": {"tags": ["a", "b", 3], "labels": {}}}'
    e = error(Record, raw)
    assert fields(e) == ("$.meta.tags[2]", "str", "int")
    assert e.raw == raw


def test_dict_entry_path_names_the_key() -> None:
    raw = b'{"tags": [], "labels": {"ok": 1, "env": "prod"}}'
    assert fields(error(Meta, raw)) == ('$.labels["env"]', "int", "str")


def test_dict_key_error() -> None:
    e = error(dict[int, str], b'{"1": "a", "x": "b"}')
    assert fields(e) == ('$["x"]', "int key", '"x"')
    e = error(dict[Color, int], b'{"green": 1}')
    assert fields(e) == ('$["green"]', "Color key", '"green"')


def test_enum_and_top_level_errors() -> None:
    assert fields(error(Color, b'"green"')) == ("$", "Color", '"green"')
    assert fields(error(list[int], b'{"a": 1}')) == ("$", "list[int]", "object")
    assert fields(error(tuple[int, str], b"[1]")) == ("$", "tuple[int, str]", "array of length 1")
    assert fields(error(int | None, b'"x"')) == ("$", "int | None", "str")


def test_recursive_path() -> None:
    raw = b'{"name": "a", "children": [{"name": "b", "children": [{"name": 7, "children": []}]}]}'
    assert fields(error(Node, raw)) == ("$.children[0].children[0].name", "str", "int")


def test_tagged_union_path() -> None:
    e = error(list[Cat | Dog], b'[{"type": "Cat", "lives": 9}, {"type": "Dog", "good": 1}]')
    assert fields(e) == ("$[1].good", "bool", "int")


@pytest.mark.parametrize("raw", [b'{"ts": ', b"{]", b"", b'{"a": 1} trailing', "\u00e9"])
def test_invalid_json(raw: bytes | str) -> None:
    e = error(dict[str, int], raw)
    assert (e.path, e.expected) == ("$", "JSON")
    assert e.found.startswith("invalid JSON: ")
    assert e.raw == (raw.encode() if isinstance(raw, str) else raw)


def test_epoch_fallback_still_reports_other_errors() -> None:
    e = error(Record, b'{"ts": 0, "level": "error", "count": "x"}')
    assert fields(e) == ("$.count", "int", "str")


def test_decode_error_pickles() -> None:
    e = error(Record, b"[]")
    again = pickle.loads(pickle.dumps(e))
    assert (fields(again), again.raw) == (fields(e), e.raw)
