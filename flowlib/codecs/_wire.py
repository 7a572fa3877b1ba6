"""Fast pickling of the key runs and event batches that cross between processes.

bytewax pickles every item it sends to a worker of another process. A slotted dataclass pickles
through Python-level ``__getstate__``/``__setstate__`` (several µs per event), which made
``-p 2`` slower than ``-p 1``. Key runs wrapped by :meth:`Wire.wrap` (a keyed step's input), or
a batch of events wrapped by :meth:`Wire.wrap_events` (a sink's input, sent to the worker that
writes its partition), pickle instead as one msgpack document decoded straight into the event
type by msgspec, about ten times cheaper. Items that stay in their process are never pickled
and cost nothing extra.

Only lossless cases take this path: records (dataclasses without ``__post_init__``, Structs)
whose fields are all ``int``, ``float``, ``str``, ``bool``, ``bytes`` or ``None``-able ones,
and only when every event is exactly of the record's class and every value exactly of its
field's type (checked at pickling time); anything else is pickled as a plain list.
"""

from __future__ import annotations

import dataclasses
import functools
from itertools import chain
from operator import attrgetter
from typing import Any, Final

import msgspec

from flowlib.codecs._describe import describe
from flowlib.codecs._nodes import (
    BoolType,
    BytesType,
    FloatType,
    IntType,
    Node,
    NoneType,
    RecordType,
    StrType,
    UnionType,
)

__all__ = ["Wire", "WireEvents", "WireRuns", "wire_for"]

_LEAVES: Final[dict[type[Node], type]] = {
    IntType: int, FloatType: float, StrType: str, BoolType: bool, BytesType: bytes,
}
_ENCODER: Final = msgspec.msgpack.Encoder()


class _Wired(list[Any]):
    """A list that pickles through its :class:`Wire`. bytewax pickles an item twice (once to
    size its message, once to write it), and an item does not change once routed: it is
    encoded once."""

    __slots__ = ("_reduced", "_wire")
    _wire: Wire
    _reduced: tuple[Any, ...]

    def _encode(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        try:
            return self._reduced
        except AttributeError:
            self._reduced = self._encode()
            return self._reduced


class WireRuns(_Wired):
    """Key runs ``[(key, [event, ...]), ...]`` that pickle through their :class:`Wire`."""

    __slots__ = ()

    def _encode(self) -> tuple[Any, ...]:
        return self._wire.reduce(self)


class WireEvents(_Wired):
    """A batch of events ``[event, ...]`` that pickles through its :class:`Wire`."""

    __slots__ = ()

    def _encode(self) -> tuple[Any, ...]:
        return self._wire.reduce_events(self)


def _field_types(node: Node) -> tuple[type, ...] | None:
    leaf = _LEAVES.get(type(node))
    if leaf is not None:
        return (leaf,)
    if isinstance(node, UnionType) and len(node.types) == 2:
        kinds = [type(t) for t in node.types]
        if NoneType in kinds:
            other = node.types[kinds.index(NoneType) ^ 1]
            inner = _LEAVES.get(type(other))
            if inner is not None:
                return (inner, type(None))
    return None


class Wire:
    """Pickles key runs of events of one record type as a msgpack document."""

    def __init__(self, cls: type, fields: list[tuple[str, tuple[type, ...]]]) -> None:
        self._cls = cls
        self._classes = {cls}
        self._fields = [(attrgetter(name), set(types)) for name, types in fields]

    def wrap(self, runs: Any) -> Any:
        """``runs`` made to pickle fast, when it is plain key runs; else ``runs`` itself."""
        return self._wrapped(WireRuns, runs)

    def wrap_events(self, events: Any) -> Any:
        """``events`` made to pickle fast, when it is a plain list; else ``events`` itself."""
        return self._wrapped(WireEvents, events)

    def _wrapped(self, kind: type[_Wired], data: Any) -> Any:
        if type(data) is not list:
            return data
        out = kind(data)
        out._wire = self
        return out

    def _exact(self, runs: list[tuple[Any, list[Any]]]) -> bool:
        return self._exact_events(list(chain.from_iterable([evs for _, evs in runs])))

    def _exact_events(self, events: list[Any]) -> bool:
        # Column by column, so that the loops over events run in C (map, set).
        if not set(map(type, events)) <= self._classes:
            return False
        return all(set(map(type, map(get, events))) <= ok for get, ok in self._fields)

    def reduce(self, runs: WireRuns) -> tuple[Any, ...]:
        plain = list(runs)
        if not self._exact(plain):
            return (list, (plain,))
        try:
            data = _ENCODER.encode([events for _, events in plain])
        except Exception:  # e.g. an int beyond 64 bits: pickle copes
            return (list, (plain,))
        return (_unwire, (self._cls, [k for k, _ in plain], data))

    def reduce_events(self, events: WireEvents) -> tuple[Any, ...]:
        plain = list(events)
        if not self._exact_events(plain):
            return (list, (plain,))
        try:
            data = _ENCODER.encode(plain)
        except Exception:  # e.g. an int beyond 64 bits: pickle copes
            return (list, (plain,))
        return (_unwire_events, (self._cls, data))


def _unwire(cls: type, keys: list[Any], data: bytes) -> list[tuple[Any, list[Any]]]:
    return list(zip(keys, _decoder(cls).decode(data), strict=True))


def _unwire_events(cls: type, data: bytes) -> list[Any]:
    return _events_decoder(cls).decode(data)


@functools.cache
def _events_decoder(cls: type) -> msgspec.msgpack.Decoder[list[Any]]:
    return msgspec.msgpack.Decoder(list[cls])  # type: ignore[valid-type]


@functools.cache
def _decoder(cls: type) -> msgspec.msgpack.Decoder[list[list[Any]]]:
    return msgspec.msgpack.Decoder(list[list[cls]])  # type: ignore[valid-type]


def wire_for(tp: object) -> Wire | None:
    """The :class:`Wire` of event type ``tp``, or ``None`` when it cannot round-trip exactly."""
    try:
        return _wire_for(tp)
    except TypeError:  # unhashable annotation: not a plain record class anyway
        return None


@functools.cache
def _wire_for(tp: object) -> Wire | None:
    try:
        node = describe(tp)
    except Exception:  # not a describable type: plain pickling
        return None
    if not isinstance(node, RecordType) or node.annotation is not node.cls:
        return None
    cls = node.cls
    if hasattr(cls, "__post_init__"):  # decoding would run it again
        return None
    if node.kind == "dataclass":
        dc_fields = dataclasses.fields(cls)
        # Every field set by __init__ (no init=False, InitVar or ClassVar pseudo-fields).
        declared = getattr(cls, "__dataclass_fields__", {})
        if len(dc_fields) != len(declared) or not all(f.init for f in dc_fields):
            return None
    elif node.kind != "struct" or node.array_like or node.tag_field is not None:
        return None
    fields = []
    for f in node.fields:
        types = _field_types(f.type)
        if types is None:
            return None
        fields.append((f.name, types))
    return Wire(cls, fields) if fields else None
