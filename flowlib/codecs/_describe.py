"""Annotation -> description node (see :mod:`flowlib.codecs._nodes`).

Unsupported annotations fail here, at inference, with :class:`UnsupportedTypeError` naming the
offending spot. Path notation, starting at the described type's name:

- ``.name``: a field of a dataclass, TypedDict, NamedTuple or Struct;
- ``[0]``: the element of a list, set, frozenset or ``tuple[X, ...]``; ``[i]`` the i-th element
  of a fixed-length tuple;
- ``[key]`` / ``[value]``: the key / value type of a dict;
- ``<union i>``: the i-th member (from 0) of a union; omitted for ``X | None``.

For example ``LogEvent.tags[0]: Callable is not encodable``.
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import types
import typing
import uuid
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from flowlib.codecs._nodes import (
    NO_DEFAULT,
    AnyType,
    BoolType,
    BytesType,
    DateTimeType,
    DateType,
    DecimalType,
    DictType,
    EnumType,
    Field,
    FloatType,
    IntType,
    ListType,
    LiteralType,
    LiteralValue,
    Node,
    NoneType,
    RecordKind,
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
    _annotation_name,
    to_annotation,
)
from flowlib.errors import UnsupportedTypeError

__all__ = ["describe"]

_LEAVES: Final[dict[object, Node]] = {
    Any: AnyType(),
    None: NoneType(),
    type(None): NoneType(),
    bool: BoolType(),
    int: IntType(),
    float: FloatType(),
    str: StrType(),
    bytes: BytesType(),
    dt.datetime: DateTimeType(),
    dt.date: DateType(),
    dt.time: TimeType(),
    dt.timedelta: TimeDeltaType(),
    decimal.Decimal: DecimalType(),
    uuid.UUID: UUIDType(),
}
_LISTS: Final = (list, abc.Sequence, abc.MutableSequence)
_SETS: Final = (set, abc.Set, abc.MutableSet)
_DICTS: Final = (dict, abc.Mapping, abc.MutableMapping)
_FIELD_WRAPPERS: Final = ("Required", "NotRequired", "ReadOnly")
_STDLIB_TYPE_MODULES: Final = ("builtins", "typing", "collections.abc", "types")


def describe(tp: object) -> Node:
    """Describe an annotation; cached, so the same annotation yields the same node.

    >>> from flowlib.codecs import describe
    >>> describe(list[int | None])
    ListType(item=UnionType(types=(IntType(), NoneType())))

    Raises :class:`~flowlib.errors.UnsupportedTypeError` for annotations that cannot be encoded.
    """
    try:
        hash(tp)
    except TypeError:  # e.g. Annotated metadata that is a list: usable, just not cacheable
        return _Translator().node(tp, _annotation_name(tp))
    return _describe_cached(tp)


@functools.cache
def _describe_cached(tp: object) -> Node:
    return _Translator().node(tp, _annotation_name(tp))


class _Translator:
    """One top-level translation; records in progress are tracked to emit :class:`RefType`."""

    def __init__(self) -> None:
        # annotation of each record being translated -> whether a RefType to it was emitted
        self._open: dict[object, bool] = {}

    def node(self, tp: object, path: str) -> Node:
        while isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        try:
            leaf = _LEAVES.get(tp)
        except TypeError:  # unhashable annotation metadata
            leaf = None
        if leaf is not None:
            return leaf
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Annotated:
            return self._annotated(tp, args[0], path)
        if isinstance(tp, typing.TypeVar):
            raise UnsupportedTypeError(path, f"unbound TypeVar {tp.__name__} is not encodable")
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _enum(tp, path)
        if origin is Literal:
            return _literal(args, path)
        if origin in (Union, types.UnionType):
            return self._union(tp, args, path)
        if tp in _LISTS or origin in _LISTS:
            return ListType(self._item(args, path))
        if tp in _SETS or tp is frozenset or origin in _SETS or origin is frozenset:
            if not args:
                raise UnsupportedTypeError(path, f"{_annotation_name(tp)} needs an element type")
            item = self.node(args[0], f"{path}[0]")
            _check_hashable(item, f"{path}[0]", "a set element")
            return SetType(item, frozen=frozenset in (tp, origin))
        if tp is tuple or origin is tuple:
            return self._tuple(tp, args, path)
        if tp in _DICTS or origin in _DICTS:
            return self._dict(args, path)
        cls = origin if origin is not None else tp
        if isinstance(cls, type):
            kind = _record_kind(cls)
            if kind is not None:
                return self._record(tp, cls, kind, args, path)
            if cls.__module__ not in _STDLIB_TYPE_MODULES:
                raise UnsupportedTypeError(
                    path,
                    f"{_annotation_name(tp)} is not encodable "
                    "(use a dataclass, TypedDict, NamedTuple or msgspec.Struct)",
                )
        raise UnsupportedTypeError(path, f"{_annotation_name(cls)} is not encodable")

    def _annotated(self, tp: object, base: object, path: str) -> Node:
        tz: bool | None = None
        for meta in getattr(tp, "__metadata__", ()):
            if not isinstance(meta, msgspec.Meta):
                continue  # other metadata documents the field; msgspec ignores it too
            for attr in ("gt", "ge", "lt", "le", "multiple_of", "pattern"):
                if getattr(meta, attr) is not None:
                    raise UnsupportedTypeError(
                        path, f"msgspec.Meta({attr}=...) constraints are not supported"
                    )
            if meta.min_length is not None or meta.max_length is not None:
                raise UnsupportedTypeError(
                    path, "msgspec.Meta length constraints are not supported"
                )
            if meta.tz is not None:
                tz = meta.tz
        node = self.node(base, path)
        if tz is None:
            return node
        if isinstance(node, DateTimeType):
            return DateTimeType(tz)
        if isinstance(node, TimeType):
            return TimeType(tz)
        raise UnsupportedTypeError(path, "msgspec.Meta(tz=...) applies only to datetime and time")

    def _item(self, args: tuple[object, ...], path: str) -> Node:
        return self.node(args[0], f"{path}[0]") if args else AnyType()

    def _union(self, tp: object, args: tuple[object, ...], path: str) -> Node:
        optional = sum(a not in (None, type(None)) for a in args) == 1
        members: list[Node] = []
        for i, arg in enumerate(args):
            member = self.node(arg, path if optional else f"{path}<union {i}>")
            for m in member.types if isinstance(member, UnionType) else (member,):
                if m not in members:
                    members.append(m)
        if AnyType() in members:
            return AnyType()
        literals = [m for m in members if isinstance(m, LiteralType)]
        if len(literals) > 1:
            merged = LiteralType(tuple(dict.fromkeys(v for lit in literals for v in lit.values)))
            members = [merged if m == literals[0] else m for m in members if m not in literals[1:]]
        if len(members) == 1:
            return members[0]
        union = UnionType(tuple(members))
        try:
            msgspec.json.Decoder(to_annotation(union))
        except TypeError as exc:
            reason = str(exc).split(" - type ", 1)[0]
            raise UnsupportedTypeError(
                path, f"{_annotation_name(tp)} is not encodable: {reason}"
            ) from None
        return union

    def _tuple(self, tp: object, args: tuple[object, ...], path: str) -> Node:
        if tp is tuple:
            return VarTupleType(AnyType())
        if len(args) == 2 and args[1] is Ellipsis:
            return VarTupleType(self.node(args[0], f"{path}[0]"))
        if args == ((),):  # the spelling typing.Tuple[()] may keep
            args = ()
        return TupleType(tuple(self.node(a, f"{path}[{i}]") for i, a in enumerate(args)))

    def _dict(self, args: tuple[object, ...], path: str) -> Node:
        if not args:
            return DictType(StrType(), AnyType())
        key = self.node(args[0], f"{path}[key]")
        if not isinstance(key, StrType | IntType | EnumType | LiteralType):
            raise UnsupportedTypeError(
                f"{path}[key]",
                f"{_annotation_name(args[0])} cannot be a dict key "
                "(use str, int, an Enum or a Literal)",
            )
        return DictType(key, self.node(args[1], f"{path}[value]"))

    def _record(
        self, tp: object, cls: type, kind: RecordKind, args: tuple[object, ...], path: str
    ) -> Node:
        if tp in self._open:
            self._open[tp] = True
            return RefType(tp)
        self._open[tp] = False
        try:
            typevars = dict(zip(getattr(cls, "__parameters__", ()), args, strict=False))
            fields = tuple(
                dataclasses.replace(
                    f, type=self.node(_substitute(hint, typevars), f"{path}.{f.name}")
                )
                for f, hint in _fields(cls, kind, path)
            )
        finally:
            recursive = self._open.pop(tp)
        config = getattr(cls, "__struct_config__", None)
        return RecordType(
            annotation=tp,
            cls=cls,
            kind=kind,
            fields=fields,
            recursive=recursive,
            array_like=kind == "namedtuple" or bool(config and config.array_like),
            tag_field=config.tag_field if config else None,
            tag=config.tag if config else None,
        )


def _record_kind(cls: type) -> RecordKind | None:
    if issubclass(cls, msgspec.Struct):
        return "struct"
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    if issubclass(cls, dict) and hasattr(cls, "__required_keys__"):
        return "typeddict"
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return "namedtuple"
    return None


_PLACEHOLDER: Final = AnyType()


def _fields(cls: type, kind: RecordKind, path: str) -> list[tuple[Field, object]]:
    """Each field (with a placeholder type) and its raw annotation."""
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # NameError for unresolvable forward references, mostly
        raise UnsupportedTypeError(
            path, f"cannot resolve the annotations of {cls.__qualname__}: {exc}"
        ) from None
    out: list[tuple[Field, object]] = []
    if kind == "dataclass":
        for f in dataclasses.fields(cls):
            if not f.init:
                raise UnsupportedTypeError(
                    f"{path}.{f.name}", "init=False fields are not supported"
                )
            factory = None if f.default_factory is dataclasses.MISSING else f.default_factory
            default = f.default if f.default is not dataclasses.MISSING else NO_DEFAULT
            required = factory is None and f.default is dataclasses.MISSING
            out.append(
                (Field(f.name, _PLACEHOLDER, f.name, required, default, factory), hints[f.name])
            )
    elif kind == "typeddict":
        required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
        for name, hint in hints.items():
            while getattr(typing.get_origin(hint), "_name", None) in _FIELD_WRAPPERS:
                hint = typing.get_args(hint)[0]
            out.append((Field(name, _PLACEHOLDER, name, name in required_keys), hint))
    elif kind == "namedtuple":
        defaults: dict[str, object] = getattr(cls, "_field_defaults", {})
        for name in getattr(cls, "_fields", ()):
            if name not in hints:
                raise UnsupportedTypeError(
                    f"{path}.{name}", "namedtuple fields need annotations (use typing.NamedTuple)"
                )
            default = defaults.get(name, NO_DEFAULT)
            out.append(
                (Field(name, _PLACEHOLDER, name, name not in defaults, default), hints[name])
            )
    else:
        for info in msgspec.structs.fields(cls):
            factory = None if info.default_factory is msgspec.NODEFAULT else info.default_factory
            default = NO_DEFAULT if info.default is msgspec.NODEFAULT else info.default
            field = Field(
                info.name, _PLACEHOLDER, info.encode_name, info.required, default, factory
            )
            out.append((field, hints[info.name]))
    return out


def _substitute(tp: object, typevars: dict[Any, object]) -> object:
    """Bind the type variables of a generic record's field annotation."""
    if not typevars:
        return tp
    if isinstance(tp, typing.TypeVar):
        return typevars.get(tp, tp)
    params = getattr(tp, "__parameters__", ())
    if params and typing.get_origin(tp) is not None and any(p in typevars for p in params):
        return tp[tuple(typevars.get(p, p) for p in params)]  # type: ignore[index]
    return tp


def _enum(cls: type[enum.Enum], path: str) -> Node:
    values = [m.value for m in cls]
    if not values:
        raise UnsupportedTypeError(path, f"{cls.__qualname__} is not encodable: it has no members")
    if not (all(type(v) is str for v in values) or all(type(v) is int for v in values)):
        raise UnsupportedTypeError(
            path, f"{cls.__qualname__} is not encodable: enum values must be all str or all int"
        )
    return EnumType(cls)


def _literal(args: tuple[object, ...], path: str) -> Node:
    values: list[LiteralValue] = []
    has_none = False
    for value in args:
        if value is None:
            has_none = True
        elif type(value) in (str, int, bool):
            values.append(typing.cast(LiteralValue, value))
        else:
            raise UnsupportedTypeError(
                path, f"Literal value {value!r} is not encodable (use str, int, bool or None)"
            )
    if not values:
        return NoneType()
    literal = LiteralType(tuple(values))
    return UnionType((literal, NoneType())) if has_none else literal


def _check_hashable(node: Node, path: str, role: str) -> None:
    """Set elements must be hashable; reject mutable containers early and clearly."""
    bad: Node | None = None
    for n in _hash_relevant(node):
        if isinstance(n, ListType | DictType | AnyType) or (
            isinstance(n, SetType) and not n.frozen
        ):
            bad = n
        elif isinstance(n, RecordType):
            config = getattr(n.cls, "__struct_config__", None)
            unhashable = (
                n.kind == "typeddict"
                or (config is not None and not config.frozen)
                or (config is None and getattr(n.cls, "__hash__", None) is None)
            )
            if unhashable:
                bad = n
        if bad is not None:
            raise UnsupportedTypeError(
                path, f"{_annotation_name(to_annotation(bad))} is not hashable, so not {role}"
            )


def _hash_relevant(node: Node) -> list[Node]:
    """The node and what its hash depends on: tuple items and union members, not record fields."""
    out = [node]
    if isinstance(node, TupleType):
        for item in node.items:
            out.extend(_hash_relevant(item))
    elif isinstance(node, VarTupleType):
        out.extend(_hash_relevant(node.item))
    elif isinstance(node, UnionType):
        for member in node.types:
            out.extend(_hash_relevant(member))
    return out
