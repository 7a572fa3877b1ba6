"""JSON side helpers: what msgspec cannot say by itself.

msgspec decodes strictly (no "5" for an int). The one lenient rule flowlib adds is that a JSON
number where a datetime is declared means epoch seconds (decoded UTC-aware, like
``datetime.fromtimestamp(x, UTC)``; a datetime declared naive rejects numbers) and where a
timedelta is declared means seconds. Records that use it take a slower path: the strict decode
fails, the document is parsed untyped, such numbers are converted (by :func:`epoch_fixer`), and
the result is decoded strictly again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Final

from flowlib.codecs._nodes import (
    DateTimeType,
    DictType,
    FloatType,
    IntType,
    ListType,
    Node,
    RecordType,
    RefType,
    SetType,
    TimeDeltaType,
    TupleType,
    UnionType,
    VarTupleType,
    contains,
)

__all__ = ["Fix", "array_members", "epoch_fixer", "object_members", "pick_tagged"]

Fix = Callable[[Any], Any]
_NUMBERS: Final = (int, float)
_UTC: Final = dt.UTC
_FROM_TIMESTAMP: Final = dt.datetime.fromtimestamp
_TD: Final = dt.timedelta


def epoch_fixer(node: Node) -> Fix | None:
    """A function rewriting epoch numbers in a parsed document, or None if ``node`` has no spot
    (datetime or timedelta) where one could appear.

    The function rewrites the document in place (it is only given documents just parsed).
    """
    return _FixerBuilder().build(node)


def object_members(union: UnionType, records: dict[object, RecordType]) -> list[Node]:
    """Members a JSON object decodes into (several only for tagged Structs)."""
    out: list[Node] = []
    for member in union.types:
        target = records.get(member.annotation, member) if isinstance(member, RefType) else member
        if isinstance(target, DictType) or (
            isinstance(target, RecordType) and not target.array_like
        ):
            out.append(member)
    return out


def array_members(union: UnionType, records: dict[object, RecordType]) -> list[Node]:
    """Members a JSON array decodes into (at most one)."""
    out: list[Node] = []
    for member in union.types:
        target = records.get(member.annotation, member) if isinstance(member, RefType) else member
        if isinstance(target, ListType | SetType | VarTupleType | TupleType) or (
            isinstance(target, RecordType) and target.array_like
        ):
            out.append(member)
    return out


def pick_tagged(members: list[Node], records: dict[object, RecordType], obj: object) -> Node | None:
    """The member a JSON object selects: the only one, or the Struct whose tag it carries."""
    if len(members) == 1:
        return members[0]
    if not isinstance(obj, dict):
        return None
    for member in members:
        target = records.get(member.annotation, member) if isinstance(member, RefType) else member
        if (
            isinstance(target, RecordType)
            and target.tag_field is not None
            and obj.get(target.tag_field) == target.tag
        ):
            return member
    return None


class _FixerBuilder:
    def __init__(self) -> None:
        self._refs: dict[object, Fix] = {}
        self._records: dict[object, RecordType] = {}

    def _needed(self, node: Node) -> bool:
        return contains(
            node,
            lambda n: (
                (isinstance(n, DateTimeType) and n.tz is not False)
                or isinstance(n, TimeDeltaType)
                or (isinstance(n, RefType) and n.annotation in self._refs)
            ),
        )

    def build(self, node: Node) -> Fix | None:
        if isinstance(node, RefType):
            return self._refs.get(node.annotation)
        if not self._needed(node):
            return None
        match node:
            case DateTimeType(tz):
                return None if tz is False else _epoch  # naive fields have no epoch reading
            case TimeDeltaType():
                return _seconds
            case ListType(item) | SetType(item) | VarTupleType(item):
                return _each(self.build(item))
            case TupleType(items):
                return _positions([self.build(i) for i in items])
            case DictType(_, value):
                return _values(self.build(value))
            case RecordType():
                return self._record(node)
            case UnionType():
                return self._union(node)
        return None

    def _record(self, node: RecordType) -> Fix:
        holder: list[Fix] = []
        self._refs[node.annotation] = lambda x: holder[0](x)
        self._records[node.annotation] = node
        fixes = [self.build(f.type) for f in node.fields]
        if node.array_like:
            fix = _positions(fixes)
        else:
            keyed = [(f.encode_name, fx) for f, fx in zip(node.fields, fixes, strict=True) if fx]
            fix = _keys(keyed)
        holder.append(fix)
        return fix

    def _union(self, node: UnionType) -> Fix:
        numeric = any(isinstance(m, IntType | FloatType) for m in node.types)
        timed = [m for m in node.types if isinstance(m, DateTimeType | TimeDeltaType)]
        on_number = self.build(timed[0]) if timed and not numeric else None
        objects = [(m, self.build(m)) for m in object_members(node, self._records)]
        arrays = [self.build(m) for m in array_members(node, self._records)]
        on_array = arrays[0] if arrays else None
        records = self._records

        def fix(x: Any) -> Any:
            kind = type(x)
            if kind is dict:
                member = pick_tagged([m for m, _ in objects], records, x)
                for m, f in objects:
                    if m is member and f is not None:
                        return f(x)
                return x
            if kind is list:
                return on_array(x) if on_array else x
            if kind in _NUMBERS and on_number:
                return on_number(x)
            return x

        return fix


def _epoch(x: Any) -> Any:
    if type(x) in _NUMBERS:
        try:
            return _FROM_TIMESTAMP(x, _UTC)
        except (OverflowError, OSError, ValueError):
            return x  # left for the strict decode to report
    return x


def _seconds(x: Any) -> Any:
    if type(x) in _NUMBERS:
        try:
            return _TD(seconds=x)
        except OverflowError:
            return x
    return x


def _each(fix: Fix | None) -> Fix:
    assert fix is not None

    def each(x: Any) -> Any:
        if type(x) is list:
            for i, v in enumerate(x):
                x[i] = fix(v)
        return x

    return each


def _values(fix: Fix | None) -> Fix:
    assert fix is not None

    def values(x: Any) -> Any:
        if type(x) is dict:
            for k, v in x.items():
                x[k] = fix(v)
        return x

    return values


def _positions(fixes: list[Fix | None]) -> Fix:
    indexed = [(i, f) for i, f in enumerate(fixes) if f is not None]

    def positions(x: Any) -> Any:
        if type(x) is list:
            for i, f in indexed:
                if i < len(x):
                    x[i] = f(x[i])
        return x

    return positions


def _keys(keyed: list[tuple[str, Fix]]) -> Fix:
    def keys(x: Any) -> Any:
        if type(x) is dict:
            for key, f in keyed:
                if key in x:
                    x[key] = f(x[key])
        return x

    return keys
