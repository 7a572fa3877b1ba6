"""The :class:`Codec` of a type and the cached :func:`codec_for`."""

# No postponed annotations here: the doctests below define dataclasses whose annotations
# must be evaluated where they are written.
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast, overload

import msgspec

from flowlib.codecs._describe import describe
from flowlib.codecs._errors import EncodeError, from_validation, malformed, raw_bytes
from flowlib.codecs._json import epoch_fixer
from flowlib.codecs._keys import KEY_ENCODER, key_canonicalizer
from flowlib.codecs._nodes import Node, _annotation_name, to_annotation, type_name
from flowlib.errors import DecodeError, UnsupportedTypeError

if TYPE_CHECKING:
    from flowlib.codecs._arrow import Plan
    from flowlib.codecs._pyarrow import pa

__all__ = ["Codec", "codec_for"]

T = TypeVar("T")

_ENCODER: Final = msgspec.json.Encoder()
_ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError, msgspec.EncodeError)


class Codec(Generic[T]):
    """Everything flowlib does with values of one type: JSON, Arrow and key bytes.

    Build it with :func:`codec_for`; all parts derive from the type's description
    (:func:`~flowlib.codecs.describe`).

    >>> from dataclasses import dataclass
    >>> from flowlib.codecs import codec_for
    >>> @dataclass
    ... class Ping:
    ...     host: str
    ...     ms: float
    >>> codec = codec_for(Ping)
    >>> codec.decode(b'{"host": "web-1", "ms": 1.5}')
    Ping(host='web-1', ms=1.5)
    >>> codec.encode(Ping("web-1", 2.0))
    b'{"host":"web-1","ms":2.0}'
    >>> codec.decode('{"host": "web-1", "ms": "slow"}')
    Traceback (most recent call last):
    ...
    flowlib.errors.DecodeError: at $.ms: expected float, found str
    >>> codec.arrow_type
    StructType(struct<host: large_string, ms: double>)
    >>> codec.from_arrow(codec.to_arrow([Ping("a", 1.0)]))
    [Ping(host='a', ms=1.0)]
    """

    __slots__ = (
        "_canon", "_decode", "_decode_lines", "_fix", "_node", "_plan_built", "_type",
        "annotation",
    )

    annotation: object
    """The annotation this codec was built for."""

    def __init__(self, annotation: object, node: Node) -> None:
        self.annotation = annotation
        self._node = node
        self._type = to_annotation(node)
        try:
            decoder = msgspec.json.Decoder(self._type)
            self._decode: Callable[[bytes | str], T] = decoder.decode
            self._decode_lines: Callable[[bytes], list[T]] = decoder.decode_lines
        except TypeError as exc:  # a combination msgspec refuses that describe() let through
            raise UnsupportedTypeError(
                _annotation_name(annotation),
                f"{_annotation_name(annotation)} is not encodable: {exc}",
            ) from None
        self._fix = epoch_fixer(node)
        self._canon = key_canonicalizer(node)
        self._plan_built: Plan | None = None

    @property
    def _plan(self) -> "Plan":
        # Built on first use: pyarrow costs ~0.2 s to import and only checkpoints need it.
        plan = self._plan_built
        if plan is None:
            from flowlib.codecs._arrow import plan_for

            plan = self._plan_built = plan_for(self._node)
        return plan

    @property
    def arrow_type(self) -> "pa.DataType":
        """The Arrow type of a column of values."""
        arrow_type: pa.DataType = self._plan.arrow_type
        return arrow_type

    def __repr__(self) -> str:
        return f"Codec({_annotation_name(self.annotation)})"

    def decode(self, data: bytes | str) -> T:
        """Parse and validate one JSON record; raises :class:`~flowlib.errors.DecodeError`.

        Decoding is strict (``"5"`` is not an int) except that a number where a datetime is
        declared is epoch seconds, decoded UTC-aware (a field declared naive rejects numbers),
        and a number where a timedelta is declared is seconds. Such records take a slower path
        (a few microseconds more).
        """
        try:
            return self._decode(data)
        except msgspec.ValidationError as exc:
            return self._recover(raw_bytes(data), exc)
        except msgspec.DecodeError as exc:
            raise malformed(raw_bytes(data), exc) from None

    def decode_lines(self, data: bytes) -> list[T]:
        """Decode newline-delimited records in one call, skipping blank lines.

        The fast path for a batch of lines: it raises on the first record that does not decode
        strictly (without saying which), so callers fall back to :meth:`decode` line by line to
        find the bad record, and to accept epoch-number timestamps.
        """
        try:
            return self._decode_lines(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise DecodeError(
                "$", _annotation_name(self.annotation), "a record that does not decode", data,
                str(exc),
            ) from None

    def _recover(self, raw: bytes, exc: msgspec.ValidationError) -> T:
        """The slow path: epoch numbers, or else the structured error."""
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError as bad_json:  # msgspec validates as it parses
            raise malformed(raw, bad_json) from None
        if self._fix is not None:
            fixed = self._fix(doc)
            try:
                return self._decode(msgspec.json.encode(fixed))
            except msgspec.ValidationError as again:
                exc, doc = again, fixed
        raise from_validation(self._node, str(exc), raw, doc) from None

    def decode_builtins(self, obj: object) -> T:
        """Validate already-parsed JSON builtins (``orjson.loads`` output) into a ``T``.

        Accepts exactly what :meth:`decode` accepts for the JSON text of ``obj``.
        """
        try:
            return cast(T, msgspec.convert(obj, self._type, str_keys=True))
        except msgspec.ValidationError:
            pass
        try:
            raw = _ENCODER.encode(obj)
        except _ENCODE_ERRORS as exc:
            raise DecodeError(
                "$", type_name(self._node), type(obj).__name__, repr(obj).encode(), str(exc)
            ) from None
        return self.decode(raw)

    def encode(self, value: T) -> bytes:
        """Compact JSON, no trailing newline. Values are not validated against ``T``.

        datetime, date, time: ISO 8601 (RFC 3339); timedelta: ISO 8601 duration
        (``"PT1.5S"``); bytes: base64; Decimal and UUID: strings; Enum: its value; sets:
        arrays; NaN and infinities: null.
        """
        try:
            return _ENCODER.encode(value)
        except _ENCODE_ERRORS as exc:
            raise EncodeError("$", str(exc)) from None

    def to_builtins(self, value: T) -> object:
        """The JSON-compatible builtins that :meth:`encode` writes (tuples stay tuples)."""
        try:
            return msgspec.to_builtins(value, str_keys=True)
        except _ENCODE_ERRORS as exc:
            raise EncodeError("$", str(exc)) from None

    def key_bytes(self, value: T) -> bytes:
        """Canonical bytes, equal for equal values in any process (for stable key hashing)."""
        canon = self._canon
        try:
            return KEY_ENCODER.encode(value if canon is None else canon(value))
        except _ENCODE_ERRORS as exc:
            raise EncodeError("$", str(exc)) from None

    def to_arrow(self, values: Sequence[T]) -> "pa.Array[Any]":
        """An Arrow array of :attr:`arrow_type`; raises :class:`EncodeError` for values the
        column type cannot hold (naive datetimes in a UTC column, ints beyond int64)."""
        try:
            array: pa.Array[Any] = self._plan.to_arrow(
                values if isinstance(values, list) else list(values)
            )
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            # a value that is not a T (the plans read attributes and items blindly)
            raise EncodeError("$", f"not a {type_name(self._node)}: {exc!r}") from None
        return array

    def from_arrow(self, array: "pa.Array[Any] | pa.ChunkedArray[Any]") -> list[T]:
        """The values of an array made by :meth:`to_arrow` (or castable to :attr:`arrow_type`).

        Nulls where the type has no None raise :class:`~flowlib.errors.DecodeError`.
        """
        from flowlib.codecs._pyarrow import pa

        chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
        out: list[T] = []
        for chunk in chunks:
            if not chunk.type.equals(self.arrow_type):
                try:
                    chunk = chunk.cast(self.arrow_type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise DecodeError(
                        "$", type_name(self._node), f"Arrow {chunk.type}", b"", str(exc)
                    ) from None
            if chunk.null_count and not self._plan.nullable:
                raise self._plan.null_error()
            out.extend(self._plan.from_arrow(chunk))
        return out


@overload
def codec_for(tp: type[T]) -> Codec[T]: ...
@overload
def codec_for(tp: object) -> Codec[Any]: ...
def codec_for(tp: object) -> Codec[Any]:
    """The codec of annotation ``tp``; the same object for the same annotation.

    Raises :class:`~flowlib.errors.UnsupportedTypeError` naming the part that cannot be encoded:

    >>> from collections.abc import Callable
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class LogEvent:
    ...     tags: list[Callable[[], None]]
    >>> codec_for(LogEvent)
    Traceback (most recent call last):
    ...
    flowlib.errors.UnsupportedTypeError: LogEvent.tags[0]: Callable is not encodable
    """
    try:
        hash(tp)
    except TypeError:  # e.g. Annotated metadata that is a list: usable, just not cacheable
        return Codec(tp, describe(tp))
    return _cached_codec(tp)


@functools.cache
def _cached_codec(tp: object) -> Codec[Any]:
    return Codec(tp, describe(tp))
