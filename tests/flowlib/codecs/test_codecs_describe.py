"""describe(): annotation -> description nodes, and UnsupportedTypeError paths."""

from __future__ import annotations

import dataclasses
import datetime as dt
import doctest
import enum
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, Literal, NamedTuple, NewType, Optional, TypeVar

import msgspec
import pytest

import flowlib.codecs._codec
import flowlib.codecs._describe
from flowlib.codecs import UnsupportedTypeError, codec_for, describe
from flowlib.codecs.types import (
    NO_DEFAULT,
    AnyType,
    BoolType,
    DateTimeType,
    DictType,
    EnumType,
    Field,
    FloatType,
    IntType,
    ListType,
    LiteralType,
    NoneType,
    RecordType,
    RefType,
    SetType,
    StrType,
    TimeType,
    TupleType,
    UnionType,
    VarTupleType,
    contains,
    to_annotation,
    type_name,
    walk,
)

T = TypeVar("T")
UserId = NewType("UserId", int)


class Level(enum.Enum):
    INFO = "info"
    WARN = "warn"


class Mixed(enum.Enum):
    A = 1
    B = "b"


@dataclasses.dataclass
class LogEvent:
    tags: list[Callable[[], None]]


@dataclasses.dataclass
class Holder:
    handler: Callable[[int], int] | None


@dataclasses.dataclass
class Choice:
    value: int | object


@dataclasses.dataclass
class Handlers:
    by_name: dict[str, Callable[[], None]]


class Plain:
    pass


@dataclasses.dataclass
class Box(Generic[T]):
    item: T


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Tree:
    value: int
    children: list[Tree]


@dataclasses.dataclass
class Ping:
    pong: Pong | None


@dataclasses.dataclass
class Pong:
    ping: Ping | None


@dataclasses.dataclass
class A:
    a: int


@dataclasses.dataclass
class B:
    b: int


# Functional form on purpose: with postponed annotations (3.11) the class form hides Required.
Movie = typing.TypedDict(  # noqa: UP013
    "Movie", {"title": typing.Required[str], "year": int}, total=False
)


class Pair(NamedTuple):
    left: int
    right: str = "r"


class Renamed(msgspec.Struct, rename="camel"):
    user_name: str


@dataclasses.dataclass
class Hidden:
    x: int
    y: int = dataclasses.field(init=False, default=0)


def test_scalars_and_containers() -> None:
    assert describe(int) == IntType()
    optional = Optional[int]  # noqa: UP045 - the spelling under test
    assert describe(optional) == UnionType((IntType(), NoneType()))
    assert describe(int | None) == describe(optional)
    assert describe(list[int]) == ListType(IntType())
    assert describe(Sequence[str]) == ListType(StrType())
    assert describe(frozenset[int]) == SetType(IntType(), frozen=True)
    assert describe(tuple[int, ...]) == VarTupleType(IntType())
    assert describe(tuple[int, str]) == TupleType((IntType(), StrType()))
    assert describe(tuple[()]) == TupleType(())
    assert describe(Mapping[str, float]) == DictType(StrType(), FloatType())
    assert describe(dict) == DictType(StrType(), AnyType())
    assert describe(Any) == AnyType()
    assert describe(UserId) == IntType()
    assert describe(Level) == EnumType(Level)
    assert describe(Annotated[bool, "documentation only"]) == BoolType()


def test_datetime_timezone_meta() -> None:
    assert describe(dt.datetime) == DateTimeType(None)
    assert describe(Annotated[dt.datetime, msgspec.Meta(tz=True)]) == DateTimeType(True)
    assert describe(Annotated[dt.time, msgspec.Meta(tz=False)]) == TimeType(False)


def test_literals_merge_and_split_none() -> None:
    assert describe(Literal["a", "b"]) == LiteralType(("a", "b"))
    assert describe(Literal["a"] | Literal["b"]) == LiteralType(("a", "b"))
    assert describe(Literal["a", None]) == UnionType((LiteralType(("a",)), NoneType()))
    assert describe(Literal[None]) == NoneType()


def test_union_with_any_is_any() -> None:
    assert describe(int | Any) == AnyType()


def test_record_fields_defaults_and_caching() -> None:
    node = describe(Point)
    assert isinstance(node, RecordType)
    assert node.kind == "dataclass"
    x, y, tags = node.fields
    assert x == Field("x", IntType(), "x")
    assert (y.required, y.default) == (False, 0)
    assert (tags.required, tags.default, tags.default_factory) == (False, NO_DEFAULT, list)
    assert describe(Point) is node


def test_typeddict_namedtuple_struct_kinds() -> None:
    movie = describe(Movie)
    assert isinstance(movie, RecordType) and movie.kind == "typeddict"
    assert [(f.name, f.required) for f in movie.fields] == [("title", True), ("year", False)]
    pair = describe(Pair)
    assert isinstance(pair, RecordType) and pair.kind == "namedtuple" and pair.array_like
    renamed = describe(Renamed)
    assert isinstance(renamed, RecordType) and renamed.kind == "struct"
    assert renamed.fields[0].encode_name == "userName"


def test_generic_record_binds_type_arguments() -> None:
    node = describe(Box[list[int]])
    assert isinstance(node, RecordType)
    assert node.cls is Box and node.annotation == Box[list[int]]
    assert node.fields[0].type == ListType(IntType())
    assert type_name(node) == "Box[list[int]]"


def test_recursive_record_uses_ref() -> None:
    node = describe(Tree)
    assert isinstance(node, RecordType) and node.recursive
    assert node.fields[1].type == ListType(RefType(Tree))
    assert contains(node, lambda n: isinstance(n, RefType))


def test_mutual_recursion() -> None:
    ping = describe(Ping)
    assert isinstance(ping, RecordType) and ping.recursive
    refs = [n for n in walk(ping) if isinstance(n, RefType)]
    assert refs == [RefType(Ping)]
    pong = next(n for n in walk(ping) if isinstance(n, RecordType) and n.cls is Pong)
    assert not pong.recursive


def test_to_annotation_round_trips_through_describe() -> None:
    for tp in (list[int | None], dict[str, tuple[int, str]], Literal["a", 1], frozenset[Level]):
        assert describe(to_annotation(describe(tp))) == describe(tp)


def test_type_names() -> None:
    assert type_name(describe(Literal["notice", "error"])) == '"notice" | "error"'
    assert type_name(describe(dict[str, list[int] | None])) == "dict[str, list[int] | None]"
    assert type_name(describe(Annotated[dt.datetime, msgspec.Meta(tz=True)])) == (
        "datetime (with timezone)"
    )


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (LogEvent, "LogEvent.tags[0]: Callable is not encodable"),
        (Holder, "Holder.handler: Callable is not encodable"),
        (Choice, "Choice.value<union 1>: object is not encodable"),
        (Handlers, "Handlers.by_name[value]: Callable is not encodable"),
        (
            dict[float, int],
            "dict[float, int][key]: float cannot be a dict key "
            "(use str, int, an Enum or a Literal)",
        ),
        (
            tuple[int, Callable[[], None]],
            "tuple[int, Callable[[], None]][1]: Callable is not encodable",
        ),
        (
            Plain,
            "Plain: Plain is not encodable "
            "(use a dataclass, TypedDict, NamedTuple or msgspec.Struct)",
        ),
        (object, "object: object is not encodable"),
        (Box, "Box.item: unbound TypeVar T is not encodable"),
        (set[list[int]], "set[list[int]][0]: list[int] is not hashable, so not a set element"),
        (Mixed, "Mixed: Mixed is not encodable: enum values must be all str or all int"),
        (Hidden, "Hidden.y: init=False fields are not supported"),
        (
            Annotated[int, msgspec.Meta(ge=0)],
            "int: msgspec.Meta(ge=...) constraints are not supported",
        ),
    ],
)
def test_unsupported_types_name_the_path(annotation: object, message: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        codec_for(annotation)
    assert str(info.value) == message


def test_ambiguous_union_is_rejected_with_msgspec_reason() -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        describe(A | B)
    assert info.value.path == "A | B"
    assert "may not contain more than one dataclass" in info.value.reason


def test_doc_examples() -> None:
    for module in (flowlib.codecs._codec, flowlib.codecs._describe):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0
        assert result.attempted > 0
