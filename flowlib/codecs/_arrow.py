"""Arrow columns for described types, converted column by column.

Mapping (a None value is an Arrow null; ``X | None`` is X's type, nullable):

- bool, int, float: ``bool_``, ``int64``, ``float64``;
- str, bytes: ``large_string``, ``large_binary`` (64-bit offsets for every variable-width type);
- datetime: ``timestamp('us', tz='UTC')``, refusing naive values; declared naive
  (``Annotated[datetime, Meta(tz=False)]``): ``timestamp('us')``, refusing aware values;
- date: ``date32``; timedelta: ``duration('us')``; naive time: ``time64('us')``;
- Decimal, UUID: ``large_string`` holding ``str(value)`` (exact at any precision);
- Enum, Literal: the type of their values (str, int or bool);
- list, set, frozenset, ``tuple[X, ...]``: ``list_(X)``;
- ``tuple[A, B]``: ``struct<f0: A, f1: B>``;
- ``dict[K, V]``: ``map_(K, V)``;
- dataclass, TypedDict, NamedTuple, Struct: a struct of the fields under their JSON names;
- anything else (unions of several types, Any, Literals mixing value types, aware times,
  recursive records): ``large_string`` holding exactly what ``Codec.encode`` writes.

A NotRequired TypedDict field whose type admits None is stored as JSON text so that "absent"
(Arrow null) and None (``"null"``) stay distinct. Going through strings is deliberate for
temporal columns: pyarrow's per-value ``datetime`` conversion is several times slower than
casting to text in C++ and parsing with msgspec.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import operator
import types
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgspec

from flowlib.codecs._errors import EncodeError, from_validation
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
    SetType,
    StrType,
    TimeDeltaType,
    TimeType,
    TupleType,
    UnionType,
    UUIDType,
    VarTupleType,
    to_annotation,
    type_name,
)
from flowlib.codecs._pyarrow import compute, pa
from flowlib.errors import DecodeError

__all__ = ["Plan", "plan_for"]

_MISSING: Final[Any] = object()  # a TypedDict key absent from a value
_ARROW_ERRORS: Final = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
_CONVERT_ERRORS: Final = (*_ARROW_ERRORS, OverflowError, TypeError, ValueError)
_TD: Final = dt.timedelta
_LITERAL_TYPES: Final[dict[type, Any]] = {
    str: pa.large_string(),
    int: pa.int64(),
    bool: pa.bool_(),
}
# pyarrow-stubs declare int64 offsets and typed children for MapArray.from_arrays; maps take
# int32 offsets, so the call goes through an untyped reference.
_MAP_ARRAY: Final[Any] = pa.MapArray


class Plan:
    """How one described type becomes an Arrow array and back."""

    __slots__ = ("arrow_type", "node", "nullable", "path")

    def __init__(self, node: Node, arrow_type: Any, path: str, nullable: bool) -> None:
        self.node = node
        self.arrow_type = arrow_type
        self.path = path
        self.nullable = nullable  # whether an Arrow null is a valid value here

    def to_arrow(self, values: list[Any]) -> Any:
        """An array of ``arrow_type`` holding ``values`` (None -> null)."""
        return self._array(values)

    def from_arrow(self, array: Any) -> list[Any]:
        """Python values of an array of ``arrow_type`` (null -> None)."""
        return list(array.to_pylist())

    def _array(self, values: list[Any]) -> Any:
        try:
            return pa.array(values, type=self.arrow_type)
        except _CONVERT_ERRORS as exc:
            raise EncodeError(self.path, f"cannot store as {self.arrow_type}: {exc}") from None

    def null_error(self) -> DecodeError:
        return DecodeError(self.path, type_name(self.node), "null", b"", "in an Arrow column")


def plan_for(node: Node, path: str = "$", nullable: bool = False) -> Plan:
    """The conversion plan for ``node``; ``path`` names the column in error messages."""
    match node:
        case UnionType() if len(node.non_null) == 1:
            return plan_for(node.non_null[0], path, nullable=True)
        case UnionType() | AnyType():
            return _Json(node, path, nullable=True)
        case NoneType():
            return Plan(node, pa.null(), path, True)
        case BoolType():
            return Plan(node, pa.bool_(), path, nullable)
        case IntType():
            return Plan(node, pa.int64(), path, nullable)
        case FloatType():
            return Plan(node, pa.float64(), path, nullable)
        case StrType():
            return Plan(node, pa.large_string(), path, nullable)
        case BytesType():
            return Plan(node, pa.large_binary(), path, nullable)
        case DateTimeType(tz):
            return _Timestamp(node, path, nullable, aware=tz is not False)
        case DateType():
            return _Parsed(node, pa.date32(), path, nullable)
        case TimeType(tz):
            if tz:
                return _Json(node, path, nullable)
            return _Parsed(node, pa.time64("us"), path, nullable)
        case TimeDeltaType():
            return _Duration(node, pa.duration("us"), path, nullable)
        case DecimalType() | UUIDType():
            return _Stringified(node, pa.large_string(), path, nullable)
        case EnumType(cls):
            by_value = pa.int64() if isinstance(node.values[0], int) else pa.large_string()
            return _Enum(node, by_value, path, nullable, cls)
        case LiteralType(values):
            kinds = {type(v) for v in values}
            if len(kinds) > 1:
                return _Json(node, path, nullable)
            return _Literal(node, _LITERAL_TYPES[kinds.pop()], path, nullable)
        case ListType(item) | SetType(item) | VarTupleType(item):
            return _List(node, path, nullable, plan_for(item, f"{path}[*]"))
        case TupleType(items):
            children = [
                (f"f{i}", _item(i), plan_for(t, f"{path}[{i}]")) for i, t in enumerate(items)
            ]
            return _Struct(node, path, nullable, children, build=None)
        case DictType(key, value):
            key_plan = plan_for(key, f"{path}[key]")
            if isinstance(key_plan, _Json):
                return _Json(node, path, nullable)
            return _Map(node, path, nullable, key_plan, plan_for(value, f"{path}[*]"))
        case RecordType():
            if node.recursive:
                return _Json(node, path, nullable)
            return _record(node, path, nullable)
    return _Json(node, path, nullable)


class _Json(Plan):
    __slots__ = ("_decode", "_missing_is_null")

    def __init__(
        self, node: Node, path: str, nullable: bool, missing_is_null: bool = False
    ) -> None:
        super().__init__(node, pa.large_string(), path, nullable)
        self._decode = msgspec.json.Decoder(to_annotation(node)).decode
        self._missing_is_null = missing_is_null

    def to_arrow(self, values: list[Any]) -> Any:
        encode = msgspec.json.encode
        try:
            if self._missing_is_null:
                texts = [None if v is _MISSING else encode(v) for v in values]
            else:
                texts = [None if v is None else encode(v) for v in values]
        except (TypeError, msgspec.EncodeError) as exc:
            raise EncodeError(self.path, str(exc)) from None
        return self._array(texts)

    def from_arrow(self, array: Any) -> list[Any]:
        absent = _MISSING if self._missing_is_null else None
        decode = self._decode
        try:
            return [absent if s is None else decode(s) for s in array.to_pylist()]
        except msgspec.ValidationError as exc:
            bad = next(s for s in array.to_pylist() if s is not None and not _decodes(decode, s))
            raise from_validation(self.node, str(exc), bad.encode()) from None
        except msgspec.DecodeError as exc:
            raise DecodeError(self.path, "JSON", f"invalid JSON: {exc}", b"") from None


def _decodes(decode: Callable[[str], Any], text: str) -> bool:
    try:
        decode(text)
    except msgspec.DecodeError:
        return False
    return True


class _Timestamp(Plan):
    __slots__ = ("_aware", "_parse")

    def __init__(self, node: Node, path: str, nullable: bool, aware: bool) -> None:
        arrow_type = pa.timestamp("us", tz="UTC") if aware else pa.timestamp("us")
        super().__init__(node, arrow_type, path, nullable)
        self._aware = aware
        self._parse = types.GenericAlias(list, (dt.datetime | None,))

    def to_arrow(self, values: list[Any]) -> Any:
        if self._aware:
            if any(v is not None and v.utcoffset() is None for v in values):
                raise EncodeError(
                    self.path,
                    "naive datetime in a UTC timestamp column "
                    "(declare Annotated[datetime, msgspec.Meta(tz=False)] for naive values)",
                )
        elif any(v is not None and v.utcoffset() is not None for v in values):
            raise EncodeError(self.path, "aware datetime in a naive timestamp column")
        return self._array(values)

    def from_arrow(self, array: Any) -> list[Any]:
        text = array.cast(pa.timestamp("us")).cast(pa.large_string())
        if self._aware:
            zulu = pa.scalar("Z", pa.large_string())
            text = compute().binary_join_element_wise(text, zulu, pa.scalar("", pa.large_string()))
        return list(msgspec.convert(text.to_pylist(), self._parse))


class _Parsed(Plan):
    """Dates and naive times: cast to ISO text in C++, parsed by msgspec."""

    __slots__ = ("_parse",)

    def __init__(self, node: Node, arrow_type: Any, path: str, nullable: bool) -> None:
        super().__init__(node, arrow_type, path, nullable)
        self._parse = types.GenericAlias(list, (operator.or_(to_annotation(node), None),))

    def to_arrow(self, values: list[Any]) -> Any:
        if isinstance(self.node, TimeType) and any(
            v is not None and v.tzinfo is not None for v in values
        ):
            raise EncodeError(
                self.path,
                "aware time in a time64 column (declare Annotated[time, msgspec.Meta(tz=True)])",
            )
        return self._array(values)

    def from_arrow(self, array: Any) -> list[Any]:
        return list(msgspec.convert(array.cast(pa.large_string()).to_pylist(), self._parse))


class _Duration(Plan):
    __slots__ = ()

    def from_arrow(self, array: Any) -> list[Any]:
        return [
            None if us is None else _TD(microseconds=us)
            for us in array.cast(pa.int64()).to_pylist()
        ]


class _Stringified(Plan):
    """Decimal and UUID as their ``str``."""

    __slots__ = ("_parse",)

    def __init__(self, node: Node, arrow_type: Any, path: str, nullable: bool) -> None:
        super().__init__(node, arrow_type, path, nullable)
        kind = decimal.Decimal if isinstance(node, DecimalType) else uuid.UUID
        self._parse = types.GenericAlias(list, (kind | None,))

    def to_arrow(self, values: list[Any]) -> Any:
        return self._array([None if v is None else str(v) for v in values])

    def from_arrow(self, array: Any) -> list[Any]:
        try:
            return list(msgspec.convert(array.to_pylist(), self._parse))
        except msgspec.ValidationError as exc:
            raise DecodeError(
                self.path, type_name(self.node), "invalid value", b"", str(exc)
            ) from None


class _Enum(Plan):
    __slots__ = ("_cls", "_members")

    def __init__(self, node: Node, arrow_type: Any, path: str, nullable: bool, cls: Any) -> None:
        super().__init__(node, arrow_type, path, nullable)
        self._cls = cls
        self._members: dict[Any, Any] = dict(cls._value2member_map_)
        self._members[None] = None

    def to_arrow(self, values: list[Any]) -> Any:
        return self._array([None if v is None else v.value for v in values])

    def from_arrow(self, array: Any) -> list[Any]:
        values = array.to_pylist()
        members = self._members
        try:
            return [members[v] for v in values]
        except KeyError:
            return [members[v] if v in members else self._lookup(v) for v in values]

    def _lookup(self, value: Any) -> Any:
        """Values that are no member's: Flag combinations, or invalid data."""
        try:
            return self._cls(value)
        except ValueError:
            found = msgspec.json.encode(value).decode()
            raise DecodeError(
                self.path, type_name(self.node), found, b"", "in an Arrow column"
            ) from None


class _Literal(Plan):
    __slots__ = ()

    def from_arrow(self, array: Any) -> list[Any]:
        values = array.to_pylist()
        allowed = self.node.values if isinstance(self.node, LiteralType) else ()
        for bad in set(values).difference(allowed, (None,)):
            found = msgspec.json.encode(bad).decode()
            raise DecodeError(self.path, type_name(self.node), found, b"", "in an Arrow column")
        return list(values)


class _List(Plan):
    __slots__ = ("_container", "_item")

    def __init__(self, node: Node, path: str, nullable: bool, item: Plan) -> None:
        super().__init__(node, pa.list_(item.arrow_type), path, nullable)
        self._item = item
        self._container: Callable[[list[Any]], Any] | None = None
        if isinstance(node, SetType):
            self._container = frozenset if node.frozen else set
        elif isinstance(node, VarTupleType):
            self._container = tuple

    def to_arrow(self, values: list[Any]) -> Any:
        flat: list[Any] = []
        offsets = [0]
        nulls = False
        for v in values:
            if v is None:
                nulls = True
            else:
                flat.extend(v)
            offsets.append(len(flat))
        mask = pa.array([v is None for v in values]) if nulls else None
        child = self._item.to_arrow(flat)
        offsets_array = pa.array(offsets, type=pa.int32())
        return pa.ListArray.from_arrays(offsets_array, child, type=self.arrow_type, mask=mask)

    def from_arrow(self, array: Any) -> list[Any]:
        child = array.flatten()
        if child.null_count and not self._item.nullable:
            raise self._item.null_error()
        flat = self._item.from_arrow(child)
        container = self._container
        out: list[Any] = []
        pos = 0
        for n in array.value_lengths().to_pylist():
            if n is None:
                out.append(None)
            else:
                items = flat[pos : pos + n]
                out.append(items if container is None else container(items))
                pos += n
        return out


class _Map(Plan):
    __slots__ = ("_entries", "_key", "_value")

    def __init__(self, node: Node, path: str, nullable: bool, key: Plan, value: Plan) -> None:
        super().__init__(node, pa.map_(key.arrow_type, value.arrow_type), path, nullable)
        self._key = key
        self._value = value
        entry = pa.struct(
            [pa.field("key", key.arrow_type, nullable=False), ("value", value.arrow_type)]
        )
        self._entries = pa.list_(entry)

    def to_arrow(self, values: list[Any]) -> Any:
        keys: list[Any] = []
        items: list[Any] = []
        offsets = [0]
        nulls = False
        for v in values:
            if v is None:
                nulls = True
            else:
                keys.extend(v.keys())
                items.extend(v.values())
            offsets.append(len(keys))
        mask = pa.array([v is None for v in values]) if nulls else None
        return _MAP_ARRAY.from_arrays(
            pa.array(offsets, type=pa.int32()),
            self._key.to_arrow(keys),
            self._value.to_arrow(items),
            type=self.arrow_type,
            mask=mask,
        )

    def from_arrow(self, array: Any) -> list[Any]:
        entries = array.cast(self._entries)  # a map cannot be flattened; its list view can
        key_array, value_array = entries.flatten().flatten()
        if value_array.null_count and not self._value.nullable:
            raise self._value.null_error()
        keys = self._key.from_arrow(key_array)
        values = self._value.from_arrow(value_array)
        out: list[Any] = []
        pos = 0
        for n in entries.value_lengths().to_pylist():
            if n is None:
                out.append(None)
            else:
                out.append(dict(zip(keys[pos : pos + n], values[pos : pos + n], strict=True)))
                pos += n
        return out


_Child = tuple[str, Callable[[Any], Any], Plan]


class _Struct(Plan):
    """Fixed tuples and records: one child array per field."""

    __slots__ = ("_build", "_children", "_fields")

    def __init__(
        self,
        node: Node,
        path: str,
        nullable: bool,
        children: list[_Child],
        build: Callable[[tuple[Any, ...]], Any] | None,
    ) -> None:
        fields = [pa.field(name, plan.arrow_type) for name, _, plan in children]
        super().__init__(node, pa.struct(fields), path, nullable)
        self._fields = fields
        self._children = children
        self._build = build

    def to_arrow(self, values: list[Any]) -> Any:
        if not self._children:
            return self._array([None if v is None else {} for v in values])
        nulls = any(v is None for v in values)
        arrays = []
        for _, get, plan in self._children:
            try:
                column = (
                    [None if v is None else get(v) for v in values]
                    if nulls
                    else list(map(get, values))
                )
            except (AttributeError, KeyError, IndexError, TypeError) as exc:
                raise EncodeError(plan.path, f"cannot read the field: {exc!r}") from None
            arrays.append(plan.to_arrow(column))
        mask = pa.array([v is None for v in values]) if nulls else None
        return pa.StructArray.from_arrays(arrays, fields=self._fields, mask=mask)

    def from_arrow(self, array: Any) -> list[Any]:
        parent_nulls = array.null_count
        columns = []
        # flatten() folds the parent's validity into each child: nulls beyond the parent's are real
        for (_, _, plan), child in zip(self._children, array.flatten(), strict=True):
            if child.null_count > parent_nulls and not plan.nullable:
                raise plan.null_error()
            columns.append(plan.from_arrow(child))
        rows: Any = zip(*columns, strict=True) if columns else [()] * len(array)
        build = self._build
        if not parent_nulls:
            return list(rows) if build is None else list(map(build, rows))
        valid = array.is_valid().to_pylist()
        if build is None:
            return [row if ok else None for row, ok in zip(rows, valid, strict=True)]
        return [build(row) if ok else None for row, ok in zip(rows, valid, strict=True)]


def _record(node: RecordType, path: str, nullable: bool) -> Plan:
    children: list[_Child] = []
    names = [f.name for f in node.fields]
    droppable: set[str] = set()
    for f in node.fields:
        child_path = f"{path}.{f.encode_name}"
        plan = plan_for(f.type, child_path)
        get: Callable[[Any], Any]
        if node.kind != "typeddict":
            get = operator.attrgetter(f.name)
        elif f.required:
            get = operator.itemgetter(f.name)
        elif plan.nullable:
            plan = _Json(f.type, child_path, nullable=True, missing_is_null=True)
            get = _getter(f.name, _MISSING)
        else:
            plan = _optional(plan)
            droppable.add(f.name)
            get = _getter(f.name, None)
        children.append((f.encode_name, get, plan))
    return _Struct(node, path, nullable, children, _builder(node, names, droppable))


def _optional(plan: Plan) -> Plan:
    plan.nullable = True  # an absent TypedDict key is stored as null
    return plan


def _item(index: int) -> Callable[[Any], Any]:
    return operator.itemgetter(index)


def _getter(name: str, absent: Any) -> Callable[[Any], Any]:
    return lambda d: d.get(name, absent)


def _builder(
    node: RecordType, names: list[str], droppable: set[str]
) -> Callable[[tuple[Any, ...]], Any]:
    cls: Any = node.cls
    if node.kind == "typeddict":

        def build(row: tuple[Any, ...]) -> Any:
            return {
                n: v
                for n, v in zip(names, row, strict=True)
                if v is not _MISSING and not (v is None and n in droppable)
            }

        return build
    if node.kind == "namedtuple" or (
        node.kind == "dataclass" and not any(f.kw_only for f in dataclasses.fields(cls))
    ):
        return lambda row: cls(*row)
    return lambda row: cls(**dict(zip(names, row, strict=True)))
