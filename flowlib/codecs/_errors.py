"""msgspec's validation messages -> one structured :class:`DecodeError`.

Only runs on the error path, so it may re-parse the record and try candidates. The path is a JSON
path: ``$`` is the record, ``.name`` a field, ``[2]`` an array position and ``["k"]`` a dict
entry. ``expected`` is the declared type's :func:`type_name`; ``found`` is the JSON kind of a value
of the wrong type (``str``, ``null``, ``object``...), ``missing field``, or the offending value
itself (JSON, shortened) when the kind was right but the value was not (bad literal, bad date).
"""

from __future__ import annotations

import re
import types
from typing import Any, Final

import msgspec

from flowlib.codecs._json import array_members, object_members, pick_tagged
from flowlib.codecs._nodes import (
    AnyType,
    DictType,
    ListType,
    Node,
    RecordType,
    RefType,
    SetType,
    TupleType,
    UnionType,
    VarTupleType,
    to_annotation,
    type_name,
)
from flowlib.errors import DecodeError, EncodeError

__all__ = ["NOTHING", "EncodeError", "from_validation", "malformed", "raw_bytes", "snippet"]

NOTHING: Final[Any] = object()
_SUFFIX: Final = re.compile(r" - at `(?:(key)` in `)?(\$[^`]*)`$")
_TOKEN: Final = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_EXPECTED_GOT: Final = re.compile(r"^Expected `([^`]*)`.*, got `([^`]*)`$")
_MISSING: Final = re.compile(r"^Object missing required field `([^`]*)`$")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `([^`]*)`$")
_SNIPPET_CHARS: Final = 60
_KINDS: Final[dict[type, str]] = {dict: "object", list: "array"}


def raw_bytes(data: object) -> bytes:
    """The record as bytes for :attr:`DecodeError.raw`."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    return repr(data).encode()


def malformed(raw: bytes, exc: Exception) -> DecodeError:
    """Invalid JSON syntax."""
    reason = str(exc).removeprefix("JSON is malformed: ")
    return DecodeError("$", "JSON", f"invalid JSON: {reason[:1].lower()}{reason[1:]}", raw)


def snippet(value: object) -> str:
    """A value as short JSON text."""
    try:
        text = msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        text = repr(value)
    return text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 1] + "…"


def from_validation(root: Node, message: str, raw: bytes, doc: Any = NOTHING) -> DecodeError:
    """Build the DecodeError for msgspec ``message`` about the record ``raw``.

    ``doc`` is the parsed record the message is about, when the caller already has it.
    """
    if doc is NOTHING:
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            doc = NOTHING
    match = _SUFFIX.search(message)
    text = message[: match.start()] if match else message
    nav = _Navigator(root, doc)
    nav.follow(match.group(2) if match else "$")
    if match and match.group(1):
        return nav.key_error(raw, text)
    if missing := _MISSING.match(text):
        field = missing.group(1)
        node = nav.field(field)
        expected = type_name(node) if node is not None else "a value"
        return DecodeError(f"{nav.path}.{field}", expected, "missing field", raw)
    if unknown := _UNKNOWN.match(text):
        return DecodeError(
            f"{nav.path}.{unknown.group(1)}", "no such field", "unknown field", raw, text
        )
    expected = type_name(nav.node) if nav.node is not None else "?"
    if got := _EXPECTED_GOT.match(text):
        return DecodeError(nav.path, expected, got.group(2), raw)
    if text.startswith("Expected `array` of length") and isinstance(nav.value, list):
        return DecodeError(nav.path, expected, f"array of length {len(nav.value)}", raw)
    found = snippet(nav.value) if nav.value is not NOTHING else "invalid value"
    detail = "" if text.startswith("Invalid enum value") else text  # found already says it
    return DecodeError(nav.path, expected, found, raw, detail)


class _Navigator:
    """Follows a msgspec path through the description and the parsed record together."""

    def __init__(self, root: Node, doc: Any) -> None:
        self.node: Node | None = root
        self.value: Any = doc
        self.path = "$"
        self._records: dict[object, RecordType] = {}

    def follow(self, msgspec_path: str) -> None:
        for name, index in _TOKEN.findall(msgspec_path):
            if self.node is None:
                return  # lost the description (cannot happen for well-formed messages)
            node = self._unwrap(self.node, "object" if name else "array")
            if name:
                self.path += f".{name}"
                self.node = self._child_field(node, name)
                self.value = (
                    self.value.get(name, NOTHING) if isinstance(self.value, dict) else NOTHING
                )
            elif index == "...":
                self._dict_entry(node)
            else:
                self._position(node, int(index))

    def field(self, name: str) -> Node | None:
        """The declared type of field ``name`` of the record at the current spot."""
        if self.node is None:
            return None
        return self._child_field(self._unwrap(self.node, "object"), name)

    def key_error(self, raw: bytes, text: str) -> DecodeError:
        node = self._unwrap(self.node, "object") if self.node is not None else None
        if not isinstance(node, DictType):
            return DecodeError(self.path, "?", "invalid key", raw, text)
        keyed = types.GenericAlias(dict, (to_annotation(node.key), Any))
        bad = NOTHING
        if isinstance(self.value, dict):
            for key in self.value:
                if not _accepts(keyed, {key: None}):
                    bad = key
                    break
        if bad is NOTHING:
            return DecodeError(
                f"{self.path}[...]", f"{type_name(node.key)} key", "invalid key", raw
            )
        return DecodeError(
            f"{self.path}[{snippet(bad)}]", f"{type_name(node.key)} key", snippet(bad), raw
        )

    def _unwrap(self, node: Node, kind: str) -> Node:
        """Resolve references and pick the union member the current value (or kind) selects."""
        while True:
            if isinstance(node, RefType):
                node = self._records.get(node.annotation, AnyType())
            elif isinstance(node, UnionType):
                value_kind = _KINDS.get(type(self.value), kind)
                members = (
                    object_members(node, self._records)
                    if value_kind == "object"
                    else array_members(node, self._records)
                )
                picked = pick_tagged(members, self._records, self.value) if members else None
                if picked is None:
                    return node
                node = picked
            else:
                if isinstance(node, RecordType):
                    self._records[node.annotation] = node
                return node

    def _child_field(self, node: Node, name: str) -> Node | None:
        if isinstance(node, RecordType):
            for f in node.fields:
                if f.encode_name == name:
                    return f.type
            return None
        return node if isinstance(node, AnyType) else None

    def _position(self, node: Node, index: int) -> None:
        self.path += f"[{index}]"
        value = self.value
        self.value = value[index] if isinstance(value, list) and index < len(value) else NOTHING
        match node:
            case ListType(item) | SetType(item) | VarTupleType(item):
                self.node = item
            case TupleType(items):
                self.node = items[index] if index < len(items) else None
            case RecordType(array_like=True):
                self.node = node.fields[index].type if index < len(node.fields) else None
            case AnyType():
                self.node = node
            case _:
                self.node = None

    def _dict_entry(self, node: Node) -> None:
        if not isinstance(node, DictType):
            self.path += "[...]"
            self.node = node if isinstance(node, AnyType) else None
            self.value = NOTHING
            return
        self.node = node.value
        if not isinstance(self.value, dict):
            self.path += "[...]"
            self.value = NOTHING
            return
        # msgspec does not say which entry failed: the first one the value type rejects did
        target = to_annotation(node.value)
        for key, value in self.value.items():
            if not _accepts(target, value):
                self.path += f"[{snippet(key)}]"
                self.value = value
                return
        self.path += "[...]"
        self.value = NOTHING


def _accepts(target: object, value: object) -> bool:
    try:
        msgspec.convert(value, target, str_keys=True)
    except msgspec.ValidationError:
        return False
    return True
