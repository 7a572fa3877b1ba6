"""Bytes <-> typed keys and values, from the declared types.

``bytes`` pass through untouched and ``str`` is UTF-8 text, as Kafka's own string serdes do, so
plain-text topics (log lines) need no JSON quoting; every other type is JSON through flowlib's
codecs (:func:`flowlib.codecs.codec_for`), validated on the way in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flowlib.codecs import codec_for

__all__ = ["batch_decoder_for", "decoder_for", "encoder_for", "is_raw"]

T = TypeVar("T")


def is_raw(tp: object) -> bool:
    """Whether values of ``tp`` travel as their own bytes (no JSON)."""
    return tp is bytes or tp is str


def _utf8(data: bytes) -> str:
    return data.decode("utf-8")


def decoder_for(tp: type[T]) -> Callable[[bytes], T]:
    """Bytes -> ``tp``; raises (``DecodeError``, ``UnicodeDecodeError``) on a bad record."""
    if tp is bytes:
        return bytes  # type: ignore[return-value]
    if tp is str:
        return _utf8  # type: ignore[return-value]
    return codec_for(tp).decode


def batch_decoder_for(tp: type[T]) -> Callable[[bytes], list[T]] | None:
    """Newline-joined JSON records -> ``tp``s in one call; ``None`` for raw types."""
    if is_raw(tp):
        return None
    return codec_for(tp).decode_lines


def encoder_for(tp: object) -> Callable[[Any], bytes]:
    """``tp`` -> bytes; for an undeclared type (``Any``), by the runtime type of each value."""
    if tp is bytes:
        return bytes
    if tp is str:
        return str.encode
    if tp is Any or tp is object or isinstance(tp, TypeVar):
        return _by_runtime_type()
    return codec_for(tp).encode


def _by_runtime_type() -> Callable[[Any], bytes]:
    encoders: dict[type, Callable[[Any], bytes]] = {bytes: bytes, str: str.encode}

    def encode(value: Any) -> bytes:
        enc = encoders.get(type(value))
        if enc is None:
            enc = encoders[type(value)] = codec_for(type(value)).encode
        return enc(value)

    return encode
