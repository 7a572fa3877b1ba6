"""The type description: a small closed vocabulary of frozen nodes.

:func:`flowlib.codecs.describe` turns an annotation into one of these nodes; every codec (JSON,
Arrow, key bytes) and every value generator is derived from the node, never from the annotation.

A description is a finite tree. A record type that refers to itself (directly or through other
records) is described once, and each recursive use inside it is a :class:`RefType` naming the
annotation of that enclosing :class:`RecordType`. A walker that keeps a map of the records it is
inside can therefore resolve every ``RefType`` without looking anything up elsewhere.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeAlias, Union

import msgspec

__all__ = [
    "NO_DEFAULT",
    "AnyType",
    "BoolType",
    "BytesType",
    "DateTimeType",
    "DateType",
    "DecimalType",
    "DictType",
    "EnumType",
    "Field",
    "FloatType",
    "IntType",
    "ListType",
    "LiteralType",
    "NoDefault",
    "Node",
    "NoneType",
    "RecordKind",
    "RecordType",
    "RefType",
    "SetType",
    "StrType",
    "TimeDeltaType",
    "TimeType",
    "TupleType",
    "UUIDType",
    "UnionType",
    "VarTupleType",
    "children",
    "contains",
    "to_annotation",
    "type_name",
    "walk",
]

LiteralValue: TypeAlias = str | int | bool


class Node:
    """Base class of every description node. Nodes are immutable and compare by value."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class _Scalar(Node):
    """Base class of the nodes without fields (``int``, ``str``, ...).

    Its subclasses are dataclasses through it: built, compared (equal when of the same class),
    hashed, shown and protected from assignment by the methods generated for it once, instead
    of once per class (generating them costs about 0.5 ms a class at import).
    """


class AnyType(_Scalar):
    """``typing.Any``: any JSON value (null, bool, int, float, str, list, str-keyed dict)."""

    __slots__ = ()


class NoneType(_Scalar):
    """``None``; appears mostly as a member of a :class:`UnionType` (``X | None``)."""

    __slots__ = ()


class BoolType(_Scalar):
    """``bool``."""

    __slots__ = ()


class IntType(_Scalar):
    """``int`` (Arrow columns hold int64)."""

    __slots__ = ()


class FloatType(_Scalar):
    """``float`` (finite values; JSON has no NaN or infinity)."""

    __slots__ = ()


class StrType(_Scalar):
    """``str``."""

    __slots__ = ()


class BytesType(_Scalar):
    """``bytes`` (base64 in JSON)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class DateTimeType(Node):
    """``datetime.datetime``.

    ``tz`` is True for ``Annotated[datetime, msgspec.Meta(tz=True)]`` (must be aware), False for
    ``Meta(tz=False)`` (must be naive) and None for a plain ``datetime`` (either when decoding
    JSON, aware in Arrow).
    """

    tz: bool | None = None


class DateType(_Scalar):
    """``datetime.date``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TimeType(Node):
    """``datetime.time``; ``tz`` as for :class:`DateTimeType`."""

    tz: bool | None = None


class TimeDeltaType(_Scalar):
    """``datetime.timedelta``."""

    __slots__ = ()


class DecimalType(_Scalar):
    """``decimal.Decimal``."""

    __slots__ = ()


class UUIDType(_Scalar):
    """``uuid.UUID``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class EnumType(Node):
    """An ``enum.Enum`` subclass whose values are all str or all int; encoded by value."""

    cls: type[enum.Enum]

    @property
    def values(self) -> tuple[str | int, ...]:
        """The member values, in definition order."""
        return tuple(member.value for member in self.cls)


@dataclass(frozen=True, slots=True)
class LiteralType(Node):
    """``Literal[...]`` of str, int and bool values (``None`` is split off into a union)."""

    values: tuple[LiteralValue, ...]


@dataclass(frozen=True, slots=True)
class ListType(Node):
    """``list[X]`` (also ``Sequence[X]`` and ``MutableSequence[X]``, decoded as lists)."""

    item: Node


@dataclass(frozen=True, slots=True)
class SetType(Node):
    """``set[X]`` or, when ``frozen``, ``frozenset[X]``; X is hashable."""

    item: Node
    frozen: bool = False


@dataclass(frozen=True, slots=True)
class VarTupleType(Node):
    """``tuple[X, ...]``."""

    item: Node


@dataclass(frozen=True, slots=True)
class TupleType(Node):
    """``tuple[A, B, ...]`` of fixed length."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class DictType(Node):
    """``dict[K, V]`` (also ``Mapping``); K is str, int, an Enum or a Literal."""

    key: Node
    value: Node


@dataclass(frozen=True, slots=True)
class UnionType(Node):
    """A union of two or more distinct members, flattened; ``X | None`` is ``(X, NoneType())``.

    Members are restricted as msgspec restricts unions (at most one member per JSON kind, except
    tagged msgspec Structs), so a JSON value always selects its member unambiguously.
    """

    types: tuple[Node, ...]

    @property
    def nullable(self) -> bool:
        """Whether None is a member."""
        return NoneType() in self.types

    @property
    def non_null(self) -> tuple[Node, ...]:
        """The members other than None."""
        return tuple(t for t in self.types if not isinstance(t, NoneType))


class NoDefault(enum.Enum):
    """Type of :data:`NO_DEFAULT`."""

    NO_DEFAULT = "NO_DEFAULT"


NO_DEFAULT: Final = NoDefault.NO_DEFAULT
"""Marks a :class:`Field` without a default value."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a :class:`RecordType`.

    ``name`` is the Python attribute (or TypedDict key); ``encode_name`` the JSON key and Arrow
    struct field name (they differ only for renamed msgspec Structs). ``required`` means the field
    must be present in JSON; a non-required field of a TypedDict may be absent from a value.
    """

    name: str
    type: Node
    encode_name: str
    required: bool = True
    default: object = NO_DEFAULT
    default_factory: Callable[[], object] | None = None


RecordKind: TypeAlias = Literal["dataclass", "typeddict", "namedtuple", "struct"]


@dataclass(frozen=True, slots=True)
class RecordType(Node):
    """A type with named fields: dataclass, TypedDict, NamedTuple or msgspec Struct.

    ``annotation`` is what was described (the class, or a parametrized generic such as
    ``Box[int]``) and ``cls`` the class to instantiate. ``recursive`` is True when a
    :class:`RefType` to this record occurs inside it. ``array_like`` records (NamedTuple,
    ``array_like`` Structs) are JSON arrays; ``tag_field``/``tag`` are set for tagged Structs.
    """

    annotation: object
    cls: type
    kind: RecordKind
    fields: tuple[Field, ...]
    recursive: bool = False
    array_like: bool = False
    tag_field: str | None = None
    tag: str | int | None = None

    @property
    def name(self) -> str:
        """Readable name: the class name, with its type arguments when generic."""
        return _annotation_name(self.annotation)

    def build(self, values: dict[str, Any]) -> Any:
        """Make an instance from field values keyed by Python field name.

        Fields left out take their defaults (or stay absent, for a TypedDict).
        """
        if self.kind == "typeddict":
            return dict(values)
        return self.cls(**values)


@dataclass(frozen=True, slots=True)
class RefType(Node):
    """A recursive use of the enclosing :class:`RecordType` whose annotation is ``annotation``."""

    annotation: object


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes of ``node`` (a :class:`RefType` has none)."""
    match node:
        case ListType(item) | SetType(item) | VarTupleType(item):
            return (item,)
        case TupleType(items):
            return items
        case DictType(key, value):
            return (key, value)
        case UnionType(members):
            return members
        case RecordType():
            return tuple(f.type for f in node.fields)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the (finite) tree, pre-order; :class:`RefType` leaves are not followed."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def contains(node: Node, predicate: Callable[[Node], bool]) -> bool:
    """Whether some node of the tree satisfies ``predicate``.

    Every record a :class:`RefType` can point to is part of the same tree, so this answer also
    covers recursive uses.
    """
    return any(predicate(n) for n in walk(node))


_AWARE: Final[dict[type, object]] = {
    dt.datetime: Annotated[dt.datetime, msgspec.Meta(tz=True)],
    dt.time: Annotated[dt.time, msgspec.Meta(tz=True)],
}
_NAIVE: Final[dict[type, object]] = {
    dt.datetime: Annotated[dt.datetime, msgspec.Meta(tz=False)],
    dt.time: Annotated[dt.time, msgspec.Meta(tz=False)],
}
_SCALARS: Final[dict[type[Node], object]] = {
    AnyType: Any,
    NoneType: type(None),
    BoolType: bool,
    IntType: int,
    FloatType: float,
    StrType: str,
    BytesType: bytes,
    DateType: dt.date,
    TimeDeltaType: dt.timedelta,
    DecimalType: decimal.Decimal,
    UUIDType: uuid.UUID,
}


def to_annotation(node: Node) -> object:
    """The annotation msgspec decodes a node with (records keep their own class)."""
    scalar = _SCALARS.get(type(node))
    if scalar is not None:
        return scalar
    match node:
        case DateTimeType(tz) | TimeType(tz):
            base = dt.datetime if isinstance(node, DateTimeType) else dt.time
            return base if tz is None else (_AWARE if tz else _NAIVE)[base]
        case EnumType(cls):
            return cls
        case LiteralType(values):
            return Literal.__getitem__(values)
        case ListType(item):
            return types.GenericAlias(list, (to_annotation(item),))
        case SetType(item, frozen):
            return types.GenericAlias(frozenset if frozen else set, (to_annotation(item),))
        case VarTupleType(item):
            return types.GenericAlias(tuple, (to_annotation(item), ...))
        case TupleType(items):
            if not items:
                return tuple[()]
            return types.GenericAlias(tuple, tuple(to_annotation(i) for i in items))
        case DictType(key, value):
            return types.GenericAlias(dict, (to_annotation(key), to_annotation(value)))
        case UnionType(members):
            return Union.__getitem__(tuple(to_annotation(m) for m in members))
        case RecordType() | RefType():
            return node.annotation
    raise AssertionError(f"unknown node {node!r}")


_NAMES: Final[dict[type[Node], str]] = {
    AnyType: "Any",
    NoneType: "None",
    BoolType: "bool",
    IntType: "int",
    FloatType: "float",
    StrType: "str",
    BytesType: "bytes",
    DateType: "date",
    TimeDeltaType: "timedelta",
    DecimalType: "Decimal",
    UUIDType: "UUID",
}


def type_name(node: Node) -> str:
    """A short human name, as used in error messages: ``int``, ``"info" | "warn"``, ``LogEvent``."""
    name = _NAMES.get(type(node))
    if name is not None:
        return name
    match node:
        case DateTimeType(tz) | TimeType(tz):
            base = "datetime" if isinstance(node, DateTimeType) else "time"
            return base if tz is None else f"{base} ({'with' if tz else 'without'} timezone)"
        case EnumType(cls):
            return cls.__qualname__
        case LiteralType(values):
            return " | ".join(msgspec.json.encode(v).decode() for v in values)
        case ListType(item):
            return f"list[{type_name(item)}]"
        case SetType(item, frozen):
            return f"{'frozenset' if frozen else 'set'}[{type_name(item)}]"
        case VarTupleType(item):
            return f"tuple[{type_name(item)}, ...]"
        case TupleType(items):
            return f"tuple[{', '.join(type_name(i) for i in items) or '()'}]"
        case DictType(key, value):
            return f"dict[{type_name(key)}, {type_name(value)}]"
        case UnionType(members):
            return " | ".join(type_name(m) for m in members)
        case RecordType() | RefType():
            return _annotation_name(node.annotation)
    raise AssertionError(f"unknown node {node!r}")


def _annotation_name(annotation: object) -> str:
    """``LogEvent``, ``Box[int]``, ``list[str]``: like the source spelling, without modules."""
    if annotation is type(None) or annotation is None:
        return "None"
    if isinstance(annotation, typing.TypeVar):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is None:
        name = getattr(annotation, "__qualname__", None) or getattr(annotation, "__name__", None)
        if not isinstance(name, str):
            return repr(annotation).removeprefix("typing.")
        return name.rpartition("<locals>.")[2]
    if origin in (Union, types.UnionType):
        return " | ".join(_annotation_name(a) for a in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is Annotated:
        return _annotation_name(args[0])
    base = _annotation_name(origin)
    if not args:
        return base
    parts = [
        "..."
        if a is Ellipsis
        else f"[{', '.join(map(_annotation_name, a))}]"
        if isinstance(a, list)
        else _annotation_name(a)
        for a in args
    ]
    return f"{base}[{', '.join(parts)}]"
