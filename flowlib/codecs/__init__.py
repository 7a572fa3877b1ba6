"""Codecs inferred from type annotations.

``codec_for(T)`` describes ``T`` once (:func:`describe`, nodes in :mod:`flowlib.codecs.types`)
and derives from that description a JSON decoder/encoder (msgspec), an Arrow type with columnar
conversion, and canonical key bytes. See :class:`Codec` for the JSON forms and
:mod:`flowlib.codecs._arrow` for the Arrow mapping.
"""

from flowlib.codecs._codec import Codec, codec_for
from flowlib.codecs._describe import describe
from flowlib.codecs._errors import EncodeError
from flowlib.codecs._nodes import Node
from flowlib.errors import DecodeError, UnsupportedTypeError

__all__ = [
    "Codec",
    "DecodeError",
    "EncodeError",
    "Node",
    "UnsupportedTypeError",
    "codec_for",
    "describe",
]
