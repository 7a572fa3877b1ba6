"""flowlib: streaming dataflows with generic, typed operators, compiled to bytewax."""

__version__ = "0.1.0"

from flowlib.codecs import Codec, codec_for
from flowlib.combining import Combinable
from flowlib.connectors import (
    JsonLinesSink,
    JsonLinesSource,
    ListSink,
    ListSource,
    Sink,
    Source,
    TextLines,
)
from flowlib.dead_letter import DeadLetter
from flowlib.errors import (
    DecodeError,
    FlowBuildError,
    FlowlibError,
    StateSchemaError,
    UnsupportedTypeError,
)
from flowlib.flow import Flow, KeyedStream, ProcessedStream, Stream
from flowlib.processor import Context, Processor, ValueState
from flowlib.state import StateBackend, StateBackendFactory

__all__ = [
    "Codec",
    "Combinable",
    "Context",
    "DeadLetter",
    "DecodeError",
    "Flow",
    "FlowBuildError",
    "FlowlibError",
    "JsonLinesSink",
    "JsonLinesSource",
    "KeyedStream",
    "ListSink",
    "ListSource",
    "ProcessedStream",
    "Processor",
    "Sink",
    "Source",
    "StateBackend",
    "StateBackendFactory",
    "StateSchemaError",
    "Stream",
    "TextLines",
    "UnsupportedTypeError",
    "ValueState",
    "__version__",
    "codec_for",
]
