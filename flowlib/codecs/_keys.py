"""Canonical key bytes: equal values give equal bytes, in every process and run.

The bytes are msgspec's JSON with ``order="deterministic"`` (dict keys sorted) of a canonical
form of the value, built only where plain JSON would tell equal values apart or depend on
iteration order:

- floats: ``-0.0`` becomes ``0.0`` and ints become floats; where a union holds several of bool,
  int and float, integral numbers become ints (``True == 1 == 1.0``);
- aware datetimes and times move to UTC (equal instants, different offsets);
- Decimals are normalized exactly (``Decimal("1.10") == Decimal("1.1")``);
- sets become lists sorted by their elements' canonical bytes (str and int sets by value);
- dict keys become their JSON key strings.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgspec

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
    contains,
)

__all__ = ["KEY_ENCODER", "key_canonicalizer"]

Canon = Callable[[Any], Any]
KEY_ENCODER: Final = msgspec.json.Encoder(order="deterministic")
_UTC: Final = dt.UTC
_EXACT: Final = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_NUMERIC: Final = (BoolType, IntType, FloatType)


def key_canonicalizer(node: Node) -> Canon | None:
    """A function making a value's canonical form, or None if the value already is one."""
    return _Builder().build(node)


def _sortable(node: Node) -> bool:
    """Whether msgspec's own (value) sort of a set of this is total and deterministic."""
    if isinstance(node, LiteralType):
        return len({type(v) for v in node.values}) == 1
    return isinstance(node, StrType | IntType | BoolType)


def _mixed_numbers(node: UnionType) -> bool:
    return sum(isinstance(m, _NUMERIC) for m in node.types) > 1


class _Builder:
    def __init__(self) -> None:
        self._refs: dict[object, Canon] = {}
        self._records: dict[object, RecordType] = {}

    def _special(self, n: Node) -> bool:
        match n:
            case FloatType() | DecimalType() | AnyType():
                return True
            case DateTimeType(tz) | TimeType(tz):
                return tz is not False
            case SetType(item):
                return not _sortable(item)
            case DictType(key):
                return not isinstance(key, StrType) and not (
                    isinstance(key, LiteralType) and all(type(v) is str for v in key.values)
                )
            case UnionType():
                return _mixed_numbers(n)
            case RefType(annotation):
                return annotation in self._refs
        return False

    def build(self, node: Node) -> Canon | None:
        if isinstance(node, RefType):
            return self._refs.get(node.annotation)
        if not contains(node, self._special):
            return None
        match node:
            case FloatType():
                return _float
            case DecimalType():
                return _decimal
            case AnyType():
                return _any
            case DateTimeType():
                return _datetime
            case TimeType():
                return _time
            case ListType(item) | VarTupleType(item):
                fn = self.build(item)
                assert fn is not None
                return lambda x: [fn(v) for v in x]
            case SetType(item):
                return _set(self.build(item) or _same)
            case TupleType(items):
                fns = [self.build(i) or _same for i in items]
                return lambda x: [f(v) for f, v in zip(fns, x, strict=True)]
            case DictType(key, value):
                return _dict(_key(key), self.build(value) or _same)
            case UnionType():
                return self._union(node)
            case RecordType():
                return self._record(node)
        raise AssertionError(f"no canonical form for {node!r}")

    def _record(self, node: RecordType) -> Canon:
        holder: list[Canon] = []
        self._refs[node.annotation] = lambda x: holder[0](x)
        self._records[node.annotation] = node
        parts = [(f.name, f.encode_name, self.build(f.type) or _same) for f in node.fields]
        fn: Canon
        if node.kind == "typeddict":

            def fn(x: Any) -> Any:
                return {enc: f(x[name]) for name, enc, f in parts if name in x}
        elif node.array_like:

            def fn(x: Any) -> Any:
                return [f(getattr(x, name)) for name, _, f in parts]
        else:

            def fn(x: Any) -> Any:
                return {enc: f(getattr(x, name)) for name, enc, f in parts}

        holder.append(fn)
        return fn

    def _union(self, node: UnionType) -> Canon:
        numbers = _mixed_numbers(node)
        choices = [
            (_matcher(m, self._records), self.build(m) or _same)
            for m in node.types
            if not (numbers and isinstance(m, _NUMERIC))
        ]

        def fn(x: Any) -> Any:
            if numbers and type(x) in (bool, int, float):
                return _number(x)
            for matches, canon in choices:
                if matches(x):
                    return canon(x)
            return x

        return fn


def _same(x: Any) -> Any:
    return x


def _float(x: Any) -> Any:
    return float(x) + 0.0  # adding 0.0 turns -0.0 into 0.0


def _number(x: Any) -> Any:
    if type(x) is float and not x.is_integer():
        return x
    return int(x)


def _decimal(x: Any) -> Any:
    if not x.is_finite():
        return str(x)
    return str(x.normalize(_EXACT)) if x else "0"


def _datetime(x: Any) -> Any:
    return x.astimezone(_UTC) if x.tzinfo is not None else x


def _time(x: Any) -> Any:
    offset = x.utcoffset()
    if offset is None:
        return x
    moment = dt.datetime.combine(dt.date(2000, 1, 3), x.replace(tzinfo=None)) - offset
    return moment.time().replace(tzinfo=_UTC)


def _any(x: Any) -> Any:
    kind = type(x)
    if kind is dict:
        return {k: _any(v) for k, v in x.items()}
    if kind is list or kind is tuple:
        return [_any(v) for v in x]
    if kind in (bool, int, float):
        return _number(x)
    return x


def _set(item: Canon) -> Canon:
    return lambda x: sorted((item(v) for v in x), key=KEY_ENCODER.encode)


def _key(node: Node) -> Canon:
    if isinstance(node, EnumType):
        return lambda k: k.value if isinstance(k.value, str) else str(k.value)
    if isinstance(node, StrType):
        return _same
    return lambda k: k if type(k) is str else msgspec.json.encode(k).decode()


def _dict(key: Canon, value: Canon) -> Canon:
    return lambda x: {key(k): value(v) for k, v in x.items()}


_PY_TYPES: Final[dict[type[Node], type | tuple[type, ...]]] = {
    BoolType: bool,
    StrType: str,
    BytesType: bytes,
    DateTimeType: dt.datetime,
    TimeType: dt.time,
    TimeDeltaType: dt.timedelta,
    DecimalType: decimal.Decimal,
    UUIDType: uuid.UUID,
    ListType: list,
    SetType: (set, frozenset),
    VarTupleType: tuple,
    TupleType: tuple,
    DictType: dict,
}


def _matcher(member: Node, records: dict[object, RecordType]) -> Callable[[Any], bool]:
    """Whether a Python value belongs to this union member."""
    match member:
        case NoneType():
            return lambda x: x is None
        case AnyType():
            return lambda x: True
        case IntType():
            return lambda x: type(x) is not bool and isinstance(x, int)
        case DateType():
            return lambda x: type(x) is dt.date
        case FloatType():
            return lambda x: type(x) is not bool and isinstance(x, float | int)
        case EnumType(cls):
            return lambda x: isinstance(x, cls)
        case LiteralType(values):
            return lambda x: type(x) in (str, int, bool) and x in values
        case RefType(annotation):
            target = records.get(annotation)
            return _matcher(target, records) if target else lambda x: False
        case RecordType():
            if member.kind == "typeddict":
                return lambda x: isinstance(x, dict)
            cls = member.cls
            return lambda x: isinstance(x, cls)
    expected = _PY_TYPES[type(member)]
    return lambda x: isinstance(x, expected)
