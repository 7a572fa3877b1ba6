"""Building flows: :class:`Flow`, typed :class:`Stream` and :class:`KeyedStream`.

Every method checks what it can when it is called, so a flow whose steps do not fit fails when it
is built, before any event runs, with a message naming both steps and both types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar, cast, get_origin, get_type_hints

from flowlib._graph import (
    FunctionNode,
    LateNode,
    MergeNode,
    Node,
    ProcessNode,
    SinkNode,
    SourceNode,
)
from flowlib._types import fits, parameter_types, processor_types, return_type, type_name
from flowlib.connectors.base import Sink, Source
from flowlib.dead_letter import DeadLetter
from flowlib.errors import FlowBuildError
from flowlib.processor import Processor
from flowlib.state import StateBackendFactory
from flowlib.time import EventTime, Late, TimeUnit
from state_backends.memory import MemoryBackend

__all__ = ["Flow", "KeyedStream", "ProcessedStream", "Stream"]

T = TypeVar("T")
U = TypeVar("U")
K = TypeVar("K")
V = TypeVar("V")

ErrorPolicy = Literal["dead_letter", "fail"]

_ID = re.compile(r"^[A-Za-z0-9_\-]+$")


class Flow:
    """A typed streaming dataflow: sources, steps and sinks.

    >>> from flowlib.connectors.memory import ListSink, ListSource
    >>> from flowlib.dead_letter import DeadLetter
    >>> flow = Flow("doubling", dead_letters=ListSink(DeadLetter))
    >>> out = ListSink(int)
    >>> flow.source(ListSource([1, 2, 3], int)).map(lambda x: x * 2).sink(out)
    >>> from flowlib.engine import run
    >>> report = run(flow)
    >>> sorted(out.items)
    [2, 4, 6]

    ``on_error`` decides what happens when a step raises on an event: ``"dead_letter"`` (the
    default) records it as a :class:`~flowlib.dead_letter.DeadLetter` and goes on; ``"fail"``
    stops the run with the user's own exception. Dead letters go to ``dead_letters`` (default: a
    ``dead_letters.jsonl`` file next to the first file sink, or in the working directory).
    """

    def __init__(
        self,
        name: str,
        *,
        max_key_groups: int = 128,
        on_error: ErrorPolicy = "dead_letter",
        dead_letters: Sink[DeadLetter] | None = None,
    ) -> None:
        if not _ID.match(name):
            msg = f"flow name {name!r} must be letters, digits, '_' or '-'"
            raise FlowBuildError(msg)
        if max_key_groups < 1:
            msg = f"max_key_groups must be at least 1, got {max_key_groups}"
            raise FlowBuildError(msg)
        self.name = name
        self.max_key_groups = max_key_groups
        self.on_error: ErrorPolicy = on_error
        self.dead_letters = dead_letters
        self.sinks: list[SinkNode] = []
        self._ids: set[str] = set()

    def _claim(self, wanted: str | None, default: str) -> str:
        if wanted is not None:
            if not _ID.match(wanted):
                msg = f"step id {wanted!r} must be letters, digits, '_' or '-'"
                raise FlowBuildError(msg)
            if wanted in self._ids:
                msg = (
                    f"step id {wanted!r} is used twice in flow {self.name!r}; "
                    "give each step a unique name"
                )
                raise FlowBuildError(msg)
            self._ids.add(wanted)
            return wanted
        base = re.sub(r"[^A-Za-z0-9_\-]", "_", default) or "step"
        candidate, n = base, 1
        while candidate in self._ids:
            n += 1
            candidate = f"{base}_{n}"
        self._ids.add(candidate)
        return candidate

    def source(self, source: Source[T], *, name: str | None = None) -> Stream[T]:
        """A stream of the events ``source`` reads."""
        node = SourceNode(
            self._claim(name, source.name_hint),
            [],
            source.item_type,
            source=source,
        )
        return Stream(self, node)

    def merge(self, first: Stream[T], *others: Stream[T], name: str | None = None) -> Stream[T]:
        """One stream of the events of all given streams."""
        return first.merge(*others, name=name)

    def stateful_steps(self) -> list[str]:
        """Ids of the steps that keep keyed state, in build order (recorded in checkpoints)."""
        from flowlib._graph import walk

        return [
            n.id for n in walk(self.sinks) if isinstance(n, ProcessNode) and n.key_fn is not None
        ]


class Stream(Generic[T]):
    """A stream of events of type ``T``."""

    def __init__(self, flow: Flow, node: Node, event_time: EventTime[T] | None = None) -> None:
        self.flow = flow
        self.node = node
        self.event_time = event_time

    def with_event_time(
        self,
        timestamp: Callable[[T], datetime] | Callable[[T], int] | str,
        *,
        max_out_of_orderness: timedelta = timedelta(0),
        allowed_lateness: timedelta = timedelta(0),
        idle_timeout: timedelta | None = None,
        unit: TimeUnit | None = None,
    ) -> Stream[T]:
        """This stream with event time from ``timestamp`` (a function or a field name).

        ``timestamp`` gives tz-aware datetimes, or, with ``unit`` (``"s"``, ``"ms"``,
        ``"us"``), integers counted in that unit from the epoch: ``with_event_time("ts",
        unit="ms")`` for a field of epoch milliseconds, which spares a datetime per event.

        Keyed steps downstream (``key_by(...).process(...)``) then keep a watermark per key
        group, fire event-time timers, and send late events to their ``late`` output; see
        :mod:`flowlib.time` for exactly how the watermark is computed. Stateless steps
        (map, filter...) drop the declaration, since they may change the event type.
        """
        spec: EventTime[T] = EventTime.of(
            timestamp,
            max_out_of_orderness=max_out_of_orderness,
            allowed_lateness=allowed_lateness,
            idle_timeout=idle_timeout,
            unit=unit,
        )
        if isinstance(timestamp, str):
            _check_time_field(self, timestamp, unit)
        return Stream(self.flow, self.node, spec)

    @property
    def item_type(self) -> object:
        """The runtime type of the events, ``Any`` when no annotation says."""
        return self.node.out_type

    def _fn(
        self,
        kind: Literal["map", "filter", "flat_map"],
        fn: Callable[[Any], Any],
        name: str | None,
        out_type: object,
    ) -> Node:
        _check_callable_input(fn, self, kind, name)
        return FunctionNode(
            self.flow._claim(name, f"{kind}_{_fn_name(fn)}"),
            [self.node],
            out_type,
            kind=kind,
            fn=fn,
        )

    def map(self, fn: Callable[[T], U], *, name: str | None = None) -> Stream[U]:
        """Each event transformed by ``fn``."""
        return Stream(self.flow, self._fn("map", fn, name, return_type(fn)))

    def filter(self, pred: Callable[[T], bool], *, name: str | None = None) -> Stream[T]:
        """Only the events for which ``pred`` is true (the others are dropped by design)."""
        return Stream(self.flow, self._fn("filter", pred, name, self.item_type))

    def flat_map(self, fn: Callable[[T], Iterable[U]], *, name: str | None = None) -> Stream[U]:
        """Every item of the iterable ``fn`` returns for each event."""
        ret = return_type(fn)
        args = getattr(ret, "__args__", None)
        out = args[0] if args and len(args) == 1 else Any
        return Stream(self.flow, self._fn("flat_map", fn, name, out))

    def key_by(
        self, key: Callable[[T], K], *, key_type: type[K] | None = None
    ) -> KeyedStream[K, T]:
        """This stream keyed by ``key(event)``, ready for a stateful :meth:`KeyedStream.process`.

        ``key_type`` is only needed when ``key`` is a lambda and the processor does not declare
        its key type: it fixes the key column of checkpoints.
        """
        declared = key_type if key_type is not None else return_type(key)
        return KeyedStream(self, key, declared)

    def process(self, processor: Processor[T, U], *, name: str | None = None) -> Stream[U]:
        """Events through a stateless ``processor`` (``Processor[In, Out]``, no ``ctx.state``)."""
        node = _process_node(self, processor, name, None, Any, MemoryBackend)
        return Stream(self.flow, node)

    def merge(self, *others: Stream[T], name: str | None = None) -> Stream[T]:
        """One stream of the events of this stream and ``others``."""
        streams = (self, *others)
        for s in others:
            if s.flow is not self.flow:
                msg = "cannot merge streams of different flows"
                raise FlowBuildError(msg)
            if not (fits(s.item_type, self.item_type) or fits(self.item_type, s.item_type)):
                msg = (
                    f"cannot merge step {s.node.id!r} ({type_name(s.item_type)}) with step "
                    f"{self.node.id!r} ({type_name(self.item_type)}): the types differ"
                )
                raise FlowBuildError(msg)
        node = MergeNode(
            self.flow._claim(name, "merge"), [s.node for s in streams], self.item_type
        )
        return Stream(self.flow, node)

    def sink(self, sink: Sink[T], *, name: str | None = None) -> None:
        """Write every event to ``sink``."""
        step = self.flow._claim(name, sink.name_hint)
        if not fits(self.item_type, sink.item_type):
            msg = (
                f"sink {step!r} accepts {type_name(sink.item_type)} but step {self.node.id!r} "
                f"produces {type_name(self.item_type)}"
            )
            raise FlowBuildError(msg)
        self.flow.sinks.append(SinkNode(step, [self.node], self.item_type, sink=sink))


class KeyedStream(Generic[K, T]):
    """A stream of events of type ``T`` keyed by ``K``: the input of stateful processors."""

    def __init__(self, stream: Stream[T], key: Callable[[T], K], key_type: object) -> None:
        self.stream = stream
        self.key = key
        self.key_type = key_type

    def process(
        self,
        processor: Processor[T, U, K, V],
        *,
        name: str | None = None,
        state: StateBackendFactory[K, V] = MemoryBackend,
    ) -> ProcessedStream[U, K, T]:
        """Events through ``processor``, which sees each event's key and that key's state.

        The step id (``name``, default: the processor's class name) names the state in
        checkpoints: keep it stable across versions of the flow.
        """
        node = _process_node(self.stream, processor, name, self.key, self.key_type, state)
        node.event_time = self.stream.event_time
        return ProcessedStream(self.stream.flow, node)


class ProcessedStream(Stream[U], Generic[U, K, T]):
    """The output of a keyed step; its :attr:`late` side output carries the late events."""

    @property
    def late(self) -> Stream[Late[K, T]]:
        """Events that arrived behind the watermark beyond the allowed lateness.

        When no step reads it, late events go to the dead-letter output instead: they are
        never dropped silently.
        """
        node = self.node
        assert isinstance(node, ProcessNode)
        if node.late is None:
            in_type = node.inputs[0].out_type
            late_type = cast(Any, Late)[node.key_type, in_type]  # runtime types, not static
            node.late = LateNode(self.flow._claim(None, f"{node.id}_late"), [node], late_type)
        return Stream(self.flow, node.late)


def _process_node(
    up: Stream[Any],
    processor: Processor[Any, Any, Any, Any] | Processor[Any, Any],
    name: str | None,
    key_fn: Callable[[Any], Any] | None,
    key_type: object,
    state: StateBackendFactory[Any, Any],
) -> ProcessNode:
    given: object = processor  # checked at runtime too: scripts need not be type-checked
    if not isinstance(given, Processor):
        msg = f"process() needs a flowlib Processor, got {type(processor).__name__}"
        raise FlowBuildError(msg)
    in_t, out_t, k_t, v_t = processor_types(type(processor), Processor)
    # K and V are None for stateless processors; generic operators leave them open and may
    # name them as attributes instead.
    k_t = Any if k_t in (None, type(None)) else k_t
    v_t = Any if v_t in (None, type(None)) else v_t
    if k_t is Any:
        k_t = getattr(processor, "key_type", Any)
    if v_t is Any:
        v_t = getattr(processor, "state_type", Any)
    step = up.flow._claim(name, type(processor).__name__)
    if key_fn is None and v_t is not Any:
        msg = (
            f"step {step!r} ({type(processor).__name__}) keeps keyed state: key the stream "
            f"from {up.node.id!r} first, e.g. .key_by(...).process(...)"
        )
        raise FlowBuildError(msg)
    if not fits(up.item_type, in_t):
        msg = (
            f"step {step!r} ({type(processor).__name__}) consumes {type_name(in_t)} but its input "
            f"step {up.node.id!r} produces {type_name(up.item_type)}"
        )
        raise FlowBuildError(msg)
    if key_fn is not None and not fits(key_type, k_t):
        msg = (
            f"step {step!r} ({type(processor).__name__}) expects keys of type {type_name(k_t)} "
            f"but the stream from {up.node.id!r} is keyed by {type_name(key_type)}"
        )
        raise FlowBuildError(msg)
    if key_fn is not None and k_t is Any:
        k_t = key_type
    if key_fn is not None and not _hashable(k_t):
        msg = (
            f"step {step!r} ({type(processor).__name__}) is keyed by {type_name(k_t)}, which is "
            "not hashable: key_by must return hashable keys (a tuple instead of a list, a "
            "frozen dataclass)"
        )
        raise FlowBuildError(msg)
    return ProcessNode(
        step,
        [up.node],
        out_t,
        processor=processor,
        key_fn=key_fn,
        key_type=k_t,
        state_type=v_t,
        state=state,
    )


def _check_time_field(up: Stream[Any], field: str, unit: TimeUnit | None) -> None:
    tp = up.item_type
    if not isinstance(tp, type):
        return
    try:
        hints = get_type_hints(tp)
    except Exception:  # unresolvable hints only lose the build-time check
        return
    if field not in hints and hints:
        msg = (
            f"event time field {field!r} is not a field of {type_name(tp)} (step "
            f"{up.node.id!r}); it has: {', '.join(hints)}"
        )
        raise FlowBuildError(msg)
    expected: type = datetime if unit is None else int
    if field in hints and not fits(hints[field], expected):
        msg = (
            f"event time field {type_name(tp)}.{field} of step {up.node.id!r} is "
            f"{type_name(hints[field])}, not {expected.__name__}"
            + (" (declare unit='ms' or 's' or 'us' for integer times)"
               if unit is None and fits(hints[field], int) else "")
            + (f" (unit={unit!r} declares integer times)" if unit is not None else "")
        )
        raise FlowBuildError(msg)


def _hashable(tp: object) -> bool:
    cls = get_origin(tp) or tp
    return not isinstance(cls, type) or getattr(cls, "__hash__", None) is not None


def _fn_name(fn: Callable[..., object]) -> str:
    name = getattr(fn, "__name__", type(fn).__name__)
    return "lambda" if name == "<lambda>" else name


def _check_callable_input(
    fn: Callable[..., object], up: Stream[Any], kind: str, name: str | None
) -> None:
    params = parameter_types(fn)
    if not params:
        return
    expected = params[0]
    if not fits(up.item_type, expected):
        label = name or f"{kind}_{_fn_name(fn)}"
        msg = (
            f"step {label!r} ({_fn_name(fn)}) takes {type_name(expected)} but its input step "
            f"{up.node.id!r} produces {type_name(up.item_type)}"
        )
        raise FlowBuildError(msg)
