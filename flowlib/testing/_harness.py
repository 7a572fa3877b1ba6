"""ProcessorHarness: one processor driven event by event, with a virtual clock.

The harness does not re-implement any semantics: it builds the step with :class:`flowlib.Flow`
(so types are resolved and checked exactly as in a flow), then drives the engine's own
:class:`~flowlib.engine._group.KeyGroup` (state backend, timers, watermark, late routing,
snapshots), the class the bytewax adapter drives in a real run. Routing a batch to keys and key
groups reuses the engine's routing functions too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, Protocol, cast

from typing_extensions import TypeVar, override

from flowlib._graph import ProcessNode
from flowlib._types import processor_types
from flowlib.codecs import codec_for
from flowlib.connectors.memory import ListSink
from flowlib.dead_letter import DeadLetter
from flowlib.engine import RunReport
from flowlib.engine._combine import combine_runs, combiner_of
from flowlib.engine._group import GroupOutput, KeyGroup, KeyGroupSpec, late_as_dead
from flowlib.engine._keygroups import group_of
from flowlib.engine._routing import route_batch, timed_routing
from flowlib.errors import FlowBuildError, FlowlibError
from flowlib.flow import Flow, ProcessedStream, Stream
from flowlib.processor import Processor, Timers, ValueState
from flowlib.state import StateBackend, StateBackendFactory
from flowlib.testing._run import run_flow
from flowlib.testing._source import TestSource
from flowlib.time import EventTime, Late, TimerKind
from state_backends.memory import MemoryBackend

__all__ = [
    "DEFAULT_START",
    "EngineRun",
    "HarnessFactory",
    "HarnessSnapshot",
    "ProcessorHarness",
    "StateView",
    "VirtualClock",
]

In = TypeVar("In")
Out = TypeVar("Out")
K = TypeVar("K", default=None)
V = TypeVar("V", default=None)
T = TypeVar("T")

ErrorPolicy = Literal["dead_letter", "fail"]

DEFAULT_START = datetime(2000, 1, 1, tzinfo=UTC)
"""Where a harness's virtual processing-time clock starts."""


class VirtualClock:
    """Processing time that moves only when told to.

    >>> clock = VirtualClock()
    >>> clock()
    datetime.datetime(2000, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> clock.advance(timedelta(seconds=90)).minute
    1
    """

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta``; returns the new time."""
        if delta < timedelta(0):
            msg = f"processing time cannot go backwards (advance by {delta})"
            raise ValueError(msg)
        self.now += delta
        return self.now


@dataclass(frozen=True)
class HarnessSnapshot:
    """What :meth:`ProcessorHarness.snapshot` returns: each key group's checkpoint bytes (the
    engine's own snapshot format) and the virtual processing time.

    >>> from operators.aggregate import Count
    >>> h = ProcessorHarness(Count[str, str](), key=lambda w: w, key_type=str)
    >>> _ = h.push("a")
    >>> snap = h.snapshot()
    >>> snap.step, len(snap.groups), snap.groups[0][:4]
    ('Count', 1, b'FLWG')
    """

    step: str
    groups: tuple[bytes, ...]
    processing_time: datetime


class StateView(Mapping[K, V]):
    """Read-only view of a harness's keyed state: ``view[key]`` is that key's ``V``.

    >>> from operators.aggregate import Count
    >>> h = ProcessorHarness(Count(), key=lambda w: w, key_type=str)
    >>> _ = h.push_many(["a", "b", "a"])
    >>> dict(h.state)
    {'a': 2, 'b': 1}
    """

    def __init__(self, harness: ProcessorHarness[Any, Any, K, V]) -> None:
        self._harness = harness

    def _backend(self, key: object) -> StateBackend[K, V]:
        return self._harness._group_for(key).backend

    @override
    def __getitem__(self, key: K) -> V:
        value = self._backend(key).get(key)
        if value is None:
            raise KeyError(key)
        return value

    @override
    def __contains__(self, key: object) -> bool:
        try:
            return key in self._backend(key)
        except TypeError:  # unhashable: never a key
            return False

    @override
    def __iter__(self) -> Iterator[K]:
        for g in self._harness._groups:
            for k, _ in g.backend.items():
                yield k

    @override
    def __len__(self) -> int:
        return sum(len(g.backend) for g in self._harness._groups)

    @override
    def __repr__(self) -> str:
        return f"StateView({dict(self.items())!r})"


class ProcessorHarness(Generic[In, Out, K, V]):
    """One processor under test: push events, move time, read typed outputs and state.

    Runs the engine's key-group runtime (no second implementation): the same state backend,
    timers, watermark and late-event rules as a real run with ``Flow(max_key_groups=...)``
    equal to ``key_groups`` (default 1: one watermark for all keys).

    >>> from flowlib import Context, Processor
    >>> class Running(Processor[int, int, str, int]):
    ...     def process(self, ctx: Context[str, int, int], event: int) -> None:
    ...         ctx.state.set(ctx.state.get(0) + event)
    ...         ctx.emit(ctx.state.get(0))
    >>> h = ProcessorHarness(Running(), key=lambda n: "odd" if n % 2 else "even")
    >>> h.push_many([1, 2, 3])
    [1, 4, 2]
    >>> h.push(5), h.outputs, h.state["odd"]
    ([9], [1, 4, 2, 9], 9)

    ``push_many`` delivers its events as one upstream batch, routed as the engine routes a
    source's batch: grouped by key (so above, 1 and 3 before 2). ``push`` is a batch of one
    event. The watermark then moves as :mod:`flowlib.time` says, since the engine moves it.

    - ``key``: the key function (required for keyed processors; a stateless
      ``Processor[In, Out]`` runs without one, and then ``ctx.state``/``ctx.timers`` fail just
      as in a flow). ``key_type`` as in ``key_by`` when the processor leaves ``K`` open.
    - ``event_time``: an :class:`~flowlib.time.EventTime`, a function or a field name (then
      ``max_out_of_orderness``, ``allowed_lateness`` and ``idle_timeout`` apply).
    - ``on_error``: as ``Flow(on_error=...)``: ``"dead_letter"`` (default) or ``"fail"``.
    - ``late_output``: late events go to :attr:`late` (True) or, as in a flow that does not
      read the ``late`` output, to :attr:`dead_letters`.
    """

    def __init__(
        self,
        processor: Processor[In, Out, K, V],
        *,
        key: Callable[[In], K] | None = None,
        key_type: type[K] | None = None,
        event_time: EventTime[In] | Callable[[In], datetime] | str | None = None,
        max_out_of_orderness: timedelta = timedelta(0),
        allowed_lateness: timedelta = timedelta(0),
        idle_timeout: timedelta | None = None,
        state: StateBackendFactory[K, V] = MemoryBackend,
        key_groups: int = 1,
        step: str | None = None,
        on_error: ErrorPolicy = "dead_letter",
        late_output: bool = True,
        clock: VirtualClock | None = None,
    ) -> None:
        self.processor = processor
        self.clock = clock or VirtualClock()
        self.outputs: list[Out] = []
        """Everything the processor emitted so far, in order."""
        self.dead_letters: list[DeadLetter] = []
        """Events (and timers, ``on_eof`` calls) that raised, and late events when
        ``late_output`` is False."""
        self.late: list[Late[K, In]] = []
        """Events that arrived behind the watermark beyond the allowed lateness."""
        self._key = key
        self._late_output = late_output
        self._fail = on_error == "fail"
        self._build_args = (
            processor, key, key_type, event_time, max_out_of_orderness, allowed_lateness,
            idle_timeout, state, key_groups, step, on_error,
        )
        _, _, processed = _build_step(*self._build_args)
        node = processed.node
        assert isinstance(node, ProcessNode)
        self.step: str = node.id
        self.key_type: object = node.key_type
        self.state_type: object = node.state_type
        self._spec = KeyGroupSpec(
            node.id, processor, node.key_type, node.state_type, node.state, node.event_time,
            late_wired=True, fail=self._fail, recovery=True, now=self.clock,
        )
        self._key_groups = key_groups if key is not None else 1
        # With one group every key maps to "0", as group_of(codec, 1) computes.
        self._group_of = group_of(codec_for(node.key_type), self._key_groups)
        self._groups: list[KeyGroup] = [self._new_group(None) for _ in range(self._key_groups)]

    # --- driving -------------------------------------------------------------------------------

    def push(self, event: In) -> list[Out]:
        """Process one event (a batch of one); returns what this call emitted."""
        return self.push_many([event])

    def push_many(self, events: Iterable[In]) -> list[Out]:
        """Process ``events`` as one upstream batch; returns what this call emitted."""
        batch = list(events)
        out: list[Out] = []
        if self._key is None:  # stateless: one pseudo key, None, as ``ctx.key`` is in a flow
            g = self._groups[0]
            return self._collect(g.process([[(None, batch)]])) if batch else out
        for gid, group_runs in self._route(batch).items():
            g = self._groups[int(gid)]
            out += self._collect(g.process([group_runs]))
        return out

    def advance_watermark(self, watermark: datetime) -> list[Out]:
        """Move every key group's watermark to ``watermark`` (never backwards), firing the
        event-time timers due; returns what they emitted."""
        out: list[Out] = []
        for g in self._groups:
            out += self._collect(g.advance_watermark(watermark))
        return out

    def advance_processing_time(self, delta: timedelta) -> list[Out]:
        """Move the virtual clock forward by ``delta``, stopping at every processing-time timer
        (and idle-watermark step) on the way, so timers fire in order, each seeing
        ``ctx.processing_time`` equal to its own time; returns what they emitted."""
        if delta < timedelta(0):
            msg = f"processing time cannot go backwards (advance by {delta})"
            raise ValueError(msg)
        target = self.clock.now + delta
        out: list[Out] = []
        while True:
            now = self.clock.now
            upcoming = [
                w for g in self._groups
                if (w := g.next_wakeup()) is not None and now < w <= target
            ]
            if not upcoming:
                break
            self.clock.now = min(upcoming)
            out += self._wake_due()
        self.clock.now = target
        out += self._wake_due()
        return out

    def end_of_input(self) -> list[Out]:
        """End of a bounded input: the watermark jumps to the end of time (every event-time
        timer fires), then ``on_eof`` runs once per key with state; returns what was emitted."""
        out: list[Out] = []
        for g in self._groups:
            out += self._collect(g.end_of_input())
        return out

    # --- inspecting ----------------------------------------------------------------------------

    @property
    def state(self) -> StateView[K, V]:
        """The keyed state, ``{key: value}``, read through the state backend."""
        return StateView(self)

    @property
    def watermark(self) -> datetime | None:
        """The lowest watermark among key groups that have one (``None`` before any)."""
        marks = [g.watermark for g in self._groups if g.watermark is not None]
        return min(marks) if marks else None

    @property
    def processing_time(self) -> datetime:
        """The virtual clock's time."""
        return self.clock.now

    @property
    def timers(self) -> list[tuple[K, datetime, TimerKind]]:
        """Pending timers as ``(key, time, kind)``, event-time ones first, in firing order."""
        entries = [e for g in self._groups for e in g.timers.entries()]
        return sorted(entries, key=lambda e: (e[2] != "event", e[1]))

    # --- checkpoints ---------------------------------------------------------------------------

    def snapshot(self) -> HarnessSnapshot:
        """A checkpoint of state, timers and watermarks, in the engine's snapshot format."""
        blobs: list[bytes] = []
        for g in self._groups:
            blob = g.snapshot()
            assert blob is not None  # the harness always runs with recovery on
            blobs.append(blob)
        return HarnessSnapshot(self.step, tuple(blobs), self.clock.now)

    def restore(self, snapshot: HarnessSnapshot) -> None:
        """Replace state, timers and watermarks with those of ``snapshot`` (as a resumed run
        does) and set the virtual clock to its time. Outputs collected so far are kept."""
        if snapshot.step != self.step or len(snapshot.groups) != len(self._groups):
            msg = (
                f"snapshot of step {snapshot.step!r} with {len(snapshot.groups)} key group(s) "
                f"cannot restore step {self.step!r} with {len(self._groups)}"
            )
            raise FlowlibError(msg)
        self._groups = [self._new_group(blob) for blob in snapshot.groups]
        self.clock.now = snapshot.processing_time

    def run_engine(
        self, events: Iterable[In], *, workers: int = 1, batch_size: int = 1
    ) -> EngineRun[Out, In, K]:
        """The same step (same processor object and options) in a real engine run over
        ``events``, read ``batch_size`` at a time; this harness is not touched.

        With ``batch_size=1`` the engine sees the batches ``push`` makes, so a processor gives
        the same outputs, late events and dead letters here as in the harness (up to order
        across key groups), processing-time timers aside (the engine runs on the wall clock).
        """
        flow, source, processed = _build_step(*self._build_args)
        out = ListSink[Any]()
        processed.sink(out, name="outputs")
        late: ListSink[Any] | None = None
        if self._late_output and isinstance(processed, ProcessedStream):
            late = ListSink[Any]()
            processed.late.sink(late, name="late")
        result = run_flow(flow, {source: events}, workers=workers, batch_size=batch_size)
        return EngineRun(
            result.outputs(out), [] if late is None else result.outputs(late),
            result.dead_letters, result.report,
        )

    # --- internals -----------------------------------------------------------------------------

    def _new_group(self, resume: bytes | None) -> KeyGroup:
        g = KeyGroup(self._spec, resume)
        if self._key is None:
            # A stateless step has no keyed state and no timers in a flow either.
            g.ctx.state = ValueState(g.ctx, None)
            g.ctx.timers = Timers(g.ctx, None)
        return g

    def _group_for(self, key: object) -> KeyGroup:
        return self._groups[int(self._group_of(key))]

    def _route(self, batch: list[Any]) -> dict[str, Any]:
        """Exactly as the engine routes a batch (the same function)."""
        key_fn = self._key
        assert key_fn is not None
        spec = self._spec
        groups, failed = route_batch(
            batch, key_fn, self._group_of, step=self.step, fail=self._fail,
            ordered=spec.event_time is not None,
            micros=timed_routing(spec.step, spec.processor, spec.event_time),
        )
        self.dead_letters.extend(failed)
        combiner = combiner_of(spec.processor, spec.event_time is not None)
        if combiner is not None:  # pre-aggregated too (flowlib.combining), never pickled here
            return {g: combine_runs(combiner, runs, None) for g, runs in groups.items()}
        return groups

    def _wake_due(self) -> list[Out]:
        out: list[Out] = []
        now = self.clock.now
        for g in self._groups:
            w = g.next_wakeup()
            if w is not None and w <= now:
                out += self._collect(g.wake())
        return out

    def _collect(self, res: GroupOutput) -> list[Out]:
        out = cast(list[Out], res.out)
        self.outputs += out
        self.dead_letters += res.dead
        if self._late_output:
            self.late += cast(list[Late[K, In]], res.late)
        else:
            self.dead_letters += late_as_dead(res.late)
        return out


@dataclass
class EngineRun(Generic[Out, In, K]):
    """What :meth:`ProcessorHarness.run_engine` collected from a real run of the step.

    >>> from operators.aggregate import Count
    >>> h = ProcessorHarness(Count[str, str](), key=lambda w: w, key_type=str)
    >>> run = h.run_engine(["a", "b", "a"])
    >>> sorted((k.key, k.value) for k in run.outputs), run.late, run.dead_letters
    ([('a', 2), ('b', 1)], [], [])
    """

    outputs: list[Out]
    late: list[Late[K, In]]
    dead_letters: list[DeadLetter]
    report: RunReport


class HarnessFactory(Protocol):
    """The type of the ``harness`` fixture: builds a :class:`ProcessorHarness` (same
    arguments), typed by the processor.

    >>> from operators.aggregate import Count
    >>> from flowlib.testing.plugin import _Factory
    >>> harness: HarnessFactory = _Factory()
    >>> harness(Count[str, str](), key=lambda w: w, key_type=str).push_many(["a", "a"])
    []
    """

    def __call__(
        self,
        processor: Processor[In, Out, K, V],
        *,
        key: Callable[[In], K] | None = None,
        key_type: type[K] | None = None,
        event_time: EventTime[In] | Callable[[In], datetime] | str | None = None,
        max_out_of_orderness: timedelta = ...,
        allowed_lateness: timedelta = ...,
        idle_timeout: timedelta | None = None,
        state: StateBackendFactory[K, V] = ...,
        key_groups: int = 1,
        step: str | None = None,
        on_error: ErrorPolicy = "dead_letter",
        late_output: bool = True,
        clock: VirtualClock | None = None,
    ) -> ProcessorHarness[In, Out, K, V]: ...


def _build_step(
    processor: Processor[Any, Any, Any, Any],
    key: Callable[[Any], Any] | None,
    key_type: object,
    event_time: EventTime[Any] | Callable[[Any], datetime] | str | None,
    max_out_of_orderness: timedelta,
    allowed_lateness: timedelta,
    idle_timeout: timedelta | None,
    state: StateBackendFactory[Any, Any],
    key_groups: int,
    step: str | None,
    on_error: ErrorPolicy,
) -> tuple[Flow, TestSource[Any], Stream[Any]]:
    """The step as a flow builds it (same type resolution and build-time checks): the flow,
    its test source and the step's output stream."""
    in_type = processor_types(type(processor), Processor)[0]
    flow = Flow("harness", max_key_groups=key_groups, on_error=on_error)
    source = TestSource[Any](in_type)
    stream: Stream[Any] = flow.source(source, name="input")
    if isinstance(event_time, EventTime):
        stream = Stream(flow, stream.node, event_time)
    elif event_time is not None:
        stream = stream.with_event_time(
            event_time, max_out_of_orderness=max_out_of_orderness,
            allowed_lateness=allowed_lateness, idle_timeout=idle_timeout,
        )
    if key is None:
        if event_time is not None:
            msg = (
                f"{type(processor).__name__}: event time needs a keyed processor "
                "(pass key=...), as stateless steps of a flow drop it"
            )
            raise FlowBuildError(msg)
        return flow, source, stream.process(processor, name=step)
    keyed = stream.key_by(key, key_type=cast(Any, key_type))
    return flow, source, keyed.process(processor, name=step, state=state)
