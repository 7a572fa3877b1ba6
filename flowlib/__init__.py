"""flowlib: streaming dataflows with generic, typed operators, compiled to bytewax."""

__version__ = "0.1.0"

from flowlib.codecs import Codec, codec_for  # noqa: E402
from flowlib.connectors import (  # noqa: E402
    JsonLinesSink,
    JsonLinesSource,
    ListSink,
    ListSource,
    Sink,
    Source,
    TextLines,
)
from flowlib.dead_letter import DeadLetter  # noqa: E402
from flowlib.errors import (  # noqa: E402
    DecodeError,
    FlowBuildError,
    FlowlibError,
    StateSchemaError,
    UnsupportedTypeError,
)
from flowlib.flow import Flow, KeyedStream, Stream  # noqa: E402
from flowlib.processor import Context, Processor, ValueState  # noqa: E402
from flowlib.state import StateBackend, StateBackendFactory  # noqa: E402

__all__ = [
    "Codec",
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
