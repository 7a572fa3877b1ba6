"""Schema evolution: converting checkpointed state to the state type a flow declares now.

A key-group snapshot stores its state as Arrow columns typed from the step's old ``K`` and ``V``.
When the flow now declares different types, :func:`conversion` compares the old Arrow type with
the new type description and either returns a :class:`Conversion` (applied to each snapshot as it
is restored, column by column in Arrow) or raises :class:`~flowlib.errors.StateSchemaError`
naming the field, its old and new type, and why.

Accepted changes, at any depth (records inside records, list items, dict values, ``X | None``):

- a record field that is new and has a default (or a default factory) gets that default; an
  ``X | None`` field without a default, and a TypedDict key that is not required, get None;
- a record field that is gone is dropped;
- a number is widened: a narrower integer to a wider one, an integer to ``float``, a narrower
  float to a wider one.

Everything else is refused, and in particular ``bool`` -> ``int``: flowlib's codecs keep bool and
int apart everywhere else (``true`` does not decode as an int), so a bool that became an int is
taken as a change of meaning, not of precision. The key ``K`` follows the same rules, except that
a key field cannot be dropped (two keys could become one), and a key may change at all only with
a single key group: a key's group is a hash of its encoded bytes, which any change alters.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pyarrow as pa

from flowlib.codecs import codec_for, describe
from flowlib.codecs._arrow import plan_for
from flowlib.codecs._pyarrow import compute
from flowlib.codecs.types import (
    NO_DEFAULT,
    DictType,
    ListType,
    Node,
    RecordType,
    SetType,
    TupleType,
    UnionType,
    VarTupleType,
    type_name,
)
from flowlib.errors import StateSchemaError

__all__ = [
    "Change",
    "Conversion",
    "Incompatible",
    "arrow_name",
    "conform_arrow",
    "conversion",
    "schema_from_text",
    "schema_to_text",
    "type_names",
]

Convert = Callable[[Any], Any]
"""Turns a chunk of the old Arrow type into one of the new type."""


@dataclass(frozen=True)
class Change:
    """One conversion a resume applies: ``Stats.latency.max: widened int -> float``."""

    part: Literal["key", "state"]
    path: str
    kind: Literal["added", "dropped", "widened"]
    detail: str

    def __str__(self) -> str:
        return f"{self.part} {self.path}: {self.kind} {self.detail}"


class Incompatible(StateSchemaError):
    """A checkpointed type that cannot be converted to the flow's; names the field."""

    def __init__(
        self, step: str, part: str, path: str, old: str, new: str, why: str, whole: bool = False
    ) -> None:
        self.step, self.part, self.path, self.old, self.new, self.why = (
            step, part, path, old, new, why)
        where = f"the {part} type" if whole else f"field {path}"
        super().__init__(
            f"step {step!r}: checkpointed {part} cannot be converted: {where} was {old}, the "
            f"flow now declares {new} ({why}); keep the old type, or start with an empty "
            "recovery directory"
        )


class _Refused(Exception):
    def __init__(self, path: str, old: str, new: str, why: str) -> None:
        super().__init__(why)
        self.path, self.old, self.new, self.why = path, old, new, why


@dataclass
class Conversion:
    """How the state table (and timers' keys) of one old schema become the flow's."""

    schema: pa.Schema  # the flow's (new) state-table schema
    key: Convert | None
    value: Convert | None
    changes: list[Change] = field(default_factory=list)

    def table(self, table: pa.Table) -> pa.Table:
        """``table`` (old schema) converted to :attr:`schema`, keeping its metadata."""
        columns = [
            _chunked(table.column("key"), self.key, self.schema.field("key").type),
            _chunked(table.column("value"), self.value, self.schema.field("value").type),
        ]
        return pa.Table.from_arrays(columns, schema=self.schema.with_metadata(
            table.schema.metadata or {}))

    def keys(self, column: Any) -> Any:
        """A key column (the timers') converted to the new key type."""
        chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
        return _chunked(chunked, self.key, self.schema.field("key").type)


def _chunked(column: Any, convert: Convert | None, to: Any) -> Any:
    if convert is None:
        return column
    return pa.chunked_array([convert(c) for c in column.chunks], type=to)


_CACHE: Final[dict[tuple[object, ...], Conversion]] = {}
_CACHE_LIMIT: Final = 256


def conversion(
    step: str,
    old: pa.Schema,
    key_type: object,
    state_type: object,
    *,
    max_key_groups: int | None = None,
    old_names: dict[str, dict[str, str]] | None = None,
) -> Conversion:
    """The conversion of state saved with schema ``old`` to ``key_type``/``state_type``.

    Raises :class:`Incompatible` for a change the rules above refuse. ``max_key_groups`` (when
    known) refuses key changes with several groups; ``old_names`` (``{"key"|"state": {relative
    path: type name}}``, from the manifest) gives the old types their Python names in messages.
    """
    # Memoised for restores (one call per key group); the offline check names old types.
    cache_key: tuple[object, ...] = (
        () if old_names else (step, old, key_type, state_type, max_key_groups))
    try:
        found = _CACHE.get(cache_key) if cache_key else None
    except TypeError:  # an unhashable annotation: no memo
        cache_key, found = (), None
    if found is not None:
        return found
    key_codec, value_codec = codec_for(key_type), codec_for(state_type)
    new = pa.schema([
        pa.field("key", key_codec.arrow_type, nullable=False),
        pa.field("value", value_codec.arrow_type),
    ])
    names = old_names or {}
    result = Conversion(new, None, None)
    for part, column, tp in (("key", "key", key_type), ("state", "value", state_type)):
        node = describe(tp)
        walker = _Walker("key" if part == "key" else "state", names.get(part, {}))
        try:
            if column not in old.names:
                raise _Refused(_root(node), "nothing", type_name(node), f"no {column} column")
            convert = walker.walk(old.field(column).type, new.field(column).type, node,
                                  _root(node), "")
            if part == "key" and convert is not None and max_key_groups not in (None, 1):
                raise _Refused(
                    _root(node), arrow_name(old.field(column).type, walker.names.get("")),
                    type_name(node),
                    f"a key decides its key group by a hash of its bytes and the flow has "
                    f"{max_key_groups} key groups; a changed key type is accepted only with "
                    "max_key_groups=1",
                )
        except _Refused as r:
            raise Incompatible(step, part, r.path, r.old, r.new, r.why,
                               whole=r.path == _root(node)) from None
        if part == "key":
            result.key = convert
        else:
            result.value = convert
        result.changes.extend(walker.changes)
    if cache_key:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[cache_key] = result
    return result


def _root(node: Node) -> str:
    return type_name(_unwrap(node) or node)


def _unwrap(node: Node | None) -> Node | None:
    if isinstance(node, UnionType) and len(node.non_null) == 1:
        return node.non_null[0]
    return node


class _Walker:
    def __init__(self, part: Literal["key", "state"], names: dict[str, str]) -> None:
        self.part = part
        self.names = names  # old type names by relative path
        self.changes: list[Change] = []

    def _old(self, t: Any, rel: str) -> str:
        return arrow_name(t, self.names.get(rel))

    def walk(
        self, old: Any, new: Any, node: Node | None, path: str, rel: str
    ) -> Convert | None:
        if old == new:
            return None
        node = _unwrap(node)
        new_name = type_name(node) if node is not None else arrow_name(new)
        if pa.types.is_struct(old) and pa.types.is_struct(new):
            if isinstance(node, RecordType):
                return self._record(old, new, node, path, rel)
            if isinstance(node, TupleType) and old.num_fields == new.num_fields:
                items = [
                    self.walk(old.field(i).type, new.field(i).type, node.items[i],
                              f"{path}[{i}]", f"{rel}[{i}]")
                    for i in range(new.num_fields)
                ]
                return _struct(new, list(range(new.num_fields)), items, {})
            why = "a tuple cannot change length" if isinstance(node, TupleType) else (
                "different structure")
            raise _Refused(path, self._old(old, rel), new_name, why)
        if _is_list(old) and _is_list(new):
            item = node.item if isinstance(node, ListType | SetType | VarTupleType) else None
            inner = self.walk(old.value_type, new.value_type, item, f"{path}[*]", f"{rel}[*]")
            return _list(new, inner)
        if pa.types.is_map(old) and pa.types.is_map(new):
            value_node = node.value if isinstance(node, DictType) else None
            if old.key_type != new.key_type:
                raise _Refused(
                    f"{path}[key]", self._old(old.key_type, f"{rel}[key]"),
                    type_name(node.key) if isinstance(node, DictType) else arrow_name(
                        new.key_type),
                    "dict keys cannot change type (two keys could become one)",
                )
            inner = self.walk(old.item_type, new.item_type, value_node, f"{path}[*]",
                              f"{rel}[*]")
            return _map(new, inner)
        refusal = _widening(old, new)
        if refusal is None:
            self.changes.append(
                Change(self.part, path, "widened", f"{self._old(old, rel)} -> {new_name}"))
            return lambda a: compute().cast(a, new, safe=False)
        raise _Refused(path, self._old(old, rel), new_name, refusal)

    def _record(
        self, old: Any, new: Any, node: RecordType, path: str, rel: str
    ) -> Convert:
        by_name = {f.encode_name: f for f in node.fields}
        old_index = {old.field(i).name: i for i in range(old.num_fields)}
        sources: list[int] = []
        converts: list[Convert | None] = []
        defaults: dict[int, Any] = {}
        for i in range(new.num_fields):
            nf = new.field(i)
            f = by_name[nf.name]
            child_path, child_rel = f"{path}.{f.name}", f"{rel}.{nf.name}"
            if nf.name in old_index:
                j = old_index[nf.name]
                sources.append(j)
                converts.append(self.walk(old.field(j).type, nf.type, f.type, child_path,
                                          child_rel))
                continue
            value, shown = _default(node, f.name, f.type, f.default, f.default_factory,
                                    f.required)
            if shown is None:
                raise _Refused(child_path, "absent", type_name(f.type),
                               "a new field needs a default, or a type that admits None")
            defaults[i] = _one(value, f.type, nf.type, child_path)
            sources.append(-1)
            converts.append(None)
            self.changes.append(Change(self.part, child_path, "added", shown))
        kept = set(by_name)
        for name, j in old_index.items():
            if name not in kept:
                dropped = f"{path}.{name}"
                if self.part == "key":
                    raise _Refused(dropped, self._old(old.field(j).type, f"{rel}.{name}"),
                                   "absent", "a key field cannot be dropped (two keys could "
                                   "become one)")
                self.changes.append(Change(
                    self.part, dropped, "dropped",
                    f"(was {self._old(old.field(j).type, f'{rel}.{name}')})"))
        return _struct(new, sources, converts, defaults)


def _default(
    node: RecordType, name: str, tp: Node, default: object,
    factory: Callable[[], object] | None, required: bool,
) -> tuple[object, str | None]:
    """The value a new field takes and how a report shows it (None: the field has none)."""
    if default is not NO_DEFAULT:
        return default, f"= {default!r}"
    if factory is not None:
        return factory(), f"= {getattr(factory, '__name__', 'factory')}()"
    if isinstance(tp, UnionType) and tp.nullable:
        return None, "= None"
    if node.kind == "typeddict" and not required:
        return None, "(absent)"
    return None, None


def _one(value: object, tp: Node, arrow_type: Any, path: str) -> Any:
    """A one-row array of ``value``, of the new field's Arrow type."""
    if value is None:
        return pa.nulls(1, arrow_type)
    try:
        array = plan_for(tp, path).to_arrow([value])
    except Exception as exc:  # a default the field's own type cannot store
        raise _Refused(path, "absent", type_name(tp), f"its default {value!r} cannot be stored: "
                       f"{exc}") from None
    return array if array.type == arrow_type else array.cast(arrow_type)


def _struct(
    new: Any,
    sources: list[int],
    converts: list[Convert | None],
    defaults: dict[int, Any],
) -> Convert:
    fields = [new.field(i) for i in range(new.num_fields)]

    def convert(array: Any) -> Any:
        children = array.flatten()  # accounts for the parent's offset (slices)
        zeros = pa.nulls(len(array), pa.int32()).fill_null(0)
        out = []
        for i, (src, conv) in enumerate(zip(sources, converts, strict=True)):
            if i in defaults:
                out.append(defaults[i].take(zeros))
            else:
                child = children[src]
                out.append(child if conv is None else conv(child))
        mask = array.is_null() if array.null_count else None
        return pa.StructArray.from_arrays(out, fields=fields, mask=mask)

    return convert


def _list(new: Any, inner: Convert | None) -> Convert:
    def convert(array: Any) -> Any:
        values = array.flatten()
        offsets = compute().subtract(array.offsets, array.offsets[0])  # flatten() starts at 0
        mask = array.is_null() if array.null_count else None
        converted = values if inner is None else inner(values)
        return pa.ListArray.from_arrays(offsets, converted, type=new, mask=mask)

    return convert


def _map(new: Any, inner: Convert | None) -> Convert:
    map_array: Any = pa.MapArray  # stubs declare int64 offsets; maps take int32

    def convert(array: Any) -> Any:
        offsets = compute().subtract(array.offsets, array.offsets[0])
        start, end = array.offsets[0].as_py(), array.offsets[-1].as_py()
        keys = array.keys.slice(start, end - start)
        items = array.items.slice(start, end - start)
        mask = array.is_null() if array.null_count else None
        converted = items if inner is None else inner(items)
        return map_array.from_arrays(offsets, keys, converted, type=new, mask=mask)

    return convert


def conform_arrow(table: pa.Table, target: pa.Schema) -> pa.Table:
    """``table`` in the columns and types of ``target`` by Arrow types alone, for readers
    without the flow's Python types: struct fields matched by name, fields absent from
    ``table`` null (a resume would fill their default), extra fields left out, numbers cast.

    >>> old = pa.table({"key": ["a"], "value": [{"n": 1, "gone": "x"}]})
    >>> new = pa.schema([("key", pa.string()), ("value", pa.struct([("n", pa.float64()),
    ...                                                            ("tag", pa.string())]))])
    >>> conform_arrow(old, new).column("value").to_pylist()
    [{'n': 1.0, 'tag': None}]
    """
    columns = []
    for f in target:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table.column(f.name)
        convert = _by_arrow(column.type, f.type)
        columns.append(_chunked(column, convert, f.type))
    return pa.Table.from_arrays(columns, schema=target.remove_metadata())


def _by_arrow(old: Any, new: Any) -> Convert | None:
    if old == new:
        return None
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        names = {old.field(i).name: i for i in range(old.num_fields)}
        sources, converts, defaults = [], [], {}
        for i in range(new.num_fields):
            nf = new.field(i)
            if nf.name in names:
                sources.append(names[nf.name])
                converts.append(_by_arrow(old.field(names[nf.name]).type, nf.type))
            else:
                sources.append(-1)
                converts.append(None)
                defaults[i] = pa.nulls(1, nf.type)
        return _struct(new, sources, converts, defaults)
    if _is_list(old) and _is_list(new):
        return _list(new, _by_arrow(old.value_type, new.value_type))
    if pa.types.is_map(old) and pa.types.is_map(new) and old.key_type == new.key_type:
        return _map(new, _by_arrow(old.item_type, new.item_type))
    return lambda a: compute().cast(a, new, safe=False)


def _is_list(t: Any) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t))


def _widening(old: Any, new: Any) -> str | None:
    """None when ``old`` -> ``new`` is a numeric widening; otherwise why it is not."""
    types = pa.types
    if types.is_boolean(old) and (types.is_integer(new) or types.is_floating(new)):
        return "bool to a number is refused: flowlib's codecs keep bool and int apart"
    if types.is_integer(old) and types.is_floating(new):
        return None  # Python's own int -> float (exact below 2**53)
    if types.is_integer(old) and types.is_integer(new):
        if types.is_signed_integer(old) and types.is_unsigned_integer(new):
            return "a signed integer cannot become unsigned"
        if new.bit_width > old.bit_width or (
            new.bit_width == old.bit_width and types.is_signed_integer(old)
            == types.is_signed_integer(new)
        ):
            return None
        return "a narrowing"
    if types.is_floating(old) and types.is_floating(new):
        return None if new.bit_width >= old.bit_width else "a narrowing"
    if types.is_floating(old) and types.is_integer(new):
        return "float to int loses the fraction"
    return "only added fields, dropped fields and wider numbers are converted"


_ARROW_NAMES: Final[dict[pa.DataType, str]] = {
    pa.null(): "None",
    pa.bool_(): "bool",
    pa.int64(): "int",
    pa.float64(): "float",
    pa.large_string(): "str",
    pa.string(): "str",
    pa.large_binary(): "bytes",
    pa.binary(): "bytes",
    pa.date32(): "date",
    pa.time64("us"): "time",
    pa.duration("us"): "timedelta",
    pa.timestamp("us", tz="UTC"): "datetime",
    pa.timestamp("us"): "datetime (without timezone)",
}


def arrow_name(t: Any, known: str | None = None) -> str:
    """A Python-like name for an Arrow type of a snapshot (``known`` wins when given)."""
    if known is not None:
        return known
    name = _ARROW_NAMES.get(t)
    if name is not None:
        return name
    if _is_list(t):
        return f"list[{arrow_name(t.value_type)}]"
    if pa.types.is_map(t):
        return f"dict[{arrow_name(t.key_type)}, {arrow_name(t.item_type)}]"
    if pa.types.is_struct(t):
        inner = ", ".join(f"{t.field(i).name}: {arrow_name(t.field(i).type)}"
                          for i in range(t.num_fields))
        return f"record {{{inner}}}"
    return str(t)


def type_names(tp: object) -> dict[str, str]:
    """Type names of ``tp`` and everything inside it, by path relative to the root.

    Stored in the manifest so that a later refusal can name the old types as the user wrote them.

    >>> type_names(dict[str, list[int]])
    {'': 'dict[str, list[int]]', '[key]': 'str', '[*]': 'list[int]', '[*][*]': 'int'}
    """
    out: dict[str, str] = {}

    def visit(node: Node, rel: str, depth: int) -> None:
        out[rel] = type_name(node)
        if depth > 32:  # recursive records are stored as JSON text: nothing below matters
            return
        inner = _unwrap(node)
        match inner:
            case RecordType() if not inner.recursive:
                for f in inner.fields:
                    visit(f.type, f"{rel}.{f.encode_name}", depth + 1)
            case TupleType(items):
                for i, item in enumerate(items):
                    visit(item, f"{rel}[{i}]", depth + 1)
            case ListType(item) | SetType(item) | VarTupleType(item):
                visit(item, f"{rel}[*]", depth + 1)
            case DictType(key, value):
                visit(key, f"{rel}[key]", depth + 1)
                visit(value, f"{rel}[*]", depth + 1)
            case _:
                pass

    visit(describe(tp), "", 0)
    return out


def schema_to_text(schema: pa.Schema) -> str:
    """An Arrow schema (without metadata) as base64 text, for the JSON manifest."""
    return base64.b64encode(schema.remove_metadata().serialize().to_pybytes()).decode()


def schema_from_text(text: str) -> pa.Schema:
    """The inverse of :func:`schema_to_text`."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
