"""Compiles a flowlib graph into a bytewax dataflow. The only module that uses bytewax operators.

Items travel through bytewax in batches: every bytewax item is a ``list`` of events (or a
:class:`_DeadBatch` of dead letters), so bytewax's per-item cost is paid once per batch. A keyed
step routes each batch into per-key-group sub-batches; each key group holds a
:class:`~flowlib.state.StateBackend` for all its keys. With recovery, every key group is its own
bytewax stateful logic (its own snapshots); without, one logic per worker holds that worker's
groups, so a batch is one bytewax item per worker (:class:`_AllGroupsLogic`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.dataflow import Stream as BxStream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from typing_extensions import override

from flowlib._graph import (
    FunctionNode,
    LateNode,
    MergeNode,
    ProcessNode,
    SinkNode,
    SourceNode,
    walk,
)
from flowlib.codecs import codec_for
from flowlib.codecs._wire import Wire, wire_for
from flowlib.connectors.base import Sink, SinkPartition, Source, SourcePartition
from flowlib.connectors.files import JsonLinesSink
from flowlib.dead_letter import DeadLetter
from flowlib.engine._combine import combine_runs, combiner_of
from flowlib.engine._counters import Counters
from flowlib.engine._group import GroupOutput, KeyGroup, KeyGroupSpec, KeyRuns, late_as_dead
from flowlib.engine._keygroups import group_of
from flowlib.engine._routing import route_batch, timed_routing
from flowlib.engine._slots import slot_keys
from flowlib.engine._threads import keep_thread_state
from flowlib.errors import FlowBuildError
from flowlib.flow import Flow
from flowlib.processor import Context
from flowlib.time import Late

if TYPE_CHECKING:  # checkpoint machinery is imported only by runs that keep checkpoints
    from flowlib.engine._incremental import Checkpoints

__all__ = ["Compiled", "compile_flow", "counted_steps", "default_dead_letter_sink", "step_kinds"]


class _DeadBatch(list[DeadLetter]):
    """Dead letters travelling beside the data batches of a step."""


def _is_data(item: object) -> bool:
    return type(item) is list or type(item) is _LateBatch


def _is_late(item: object) -> bool:
    return type(item) is _LateBatch


def _is_data_pair(item: tuple[str, object]) -> bool:
    return type(item[1]) is not _DeadBatch


@dataclass
class Compiled:
    dataflow: Dataflow
    counters: Counters
    stateful_steps: list[str]


def step_kinds(flow: Flow) -> list[tuple[str, str]]:
    """``(step id, kind)`` of every step, in build order."""
    out: list[tuple[str, str]] = []
    for n in walk(flow.sinks):
        kind: str
        if isinstance(n, FunctionNode):
            kind = n.kind
        elif isinstance(n, ProcessNode):
            kind = "process (keyed)" if n.key_fn is not None else "process"
        else:
            kind = type(n).__name__.removesuffix("Node").lower()
        out.append((n.id, kind))
    return out


def counted_steps(flow: Flow) -> list[tuple[str, str]]:
    """The steps a run counts: every step, then the dead-letter sink."""
    return [*step_kinds(flow), ("dead_letters", "sink")]


def default_dead_letter_sink(flow: Flow) -> Sink[DeadLetter]:
    """The flow's dead-letter sink, or a ``dead_letters.jsonl`` beside its first file sink."""
    if flow.dead_letters is not None:
        return flow.dead_letters
    for s in flow.sinks:
        path = getattr(s.sink, "path", None)
        if isinstance(path, Path):
            return JsonLinesSink(path.parent / "dead_letters.jsonl", DeadLetter)
    return JsonLinesSink(Path(f"{flow.name}-dead_letters.jsonl"), DeadLetter)


def compile_flow(
    flow: Flow,
    *,
    recovery: bool,
    checkpoints: Checkpoints | None = None,
    processes: int = 1,
    workers: int = 1,
) -> Compiled:
    """The bytewax dataflow of ``flow``; ``recovery`` says whether snapshots are kept,
    ``checkpoints`` where and how (full or incremental); ``processes`` how many processes run
    it (items cross between processes only when there are several), ``workers`` how many
    workers in all (without recovery a keyed step routes a batch as one item per worker)."""
    if not flow.sinks:
        msg = f"flow {flow.name!r} has no sink: nothing would be written"
        raise FlowBuildError(msg)
    nodes = walk(flow.sinks)
    reachable = {id(n) for n in nodes}
    counters = Counters(flow.name, counted_steps(flow))
    df = Dataflow(flow.name)
    streams: dict[int, BxStream[Any]] = {}
    dead: list[BxStream[Any]] = []
    fail = flow.on_error == "fail"
    # Without recovery nothing is snapshotted per key group: one logic per worker then holds
    # that worker's groups (bytewax's stateful operator costs the same per item, however much
    # the item holds).
    slots = None if recovery else slot_keys(workers)

    def wire(tp: object) -> Wire | None:
        # Batches pickle through msgpack only where they can leave the process.
        return wire_for(tp) if processes > 1 else None

    def data_and_dead(step: str, s: BxStream[Any]) -> BxStream[Any]:
        b = op.branch(f"{step}__split", s, _is_data)
        dead.append(b.falses)
        return b.trues

    for n in nodes:
        if isinstance(n, SourceNode):
            raw = op.input(n.id, df, _BxSource(n.source, n.id, counters))
            streams[id(n)] = data_and_dead(n.id, raw)
        elif isinstance(n, FunctionNode):
            fn = _function_step(n, counters, fail)
            streams[id(n)] = data_and_dead(
                n.id, op.flat_map(n.id, streams[id(n.inputs[0])], fn)
            )
        elif isinstance(n, ProcessNode) and n.key_fn is None:
            fn = _stateless_process_step(n, counters, fail)
            streams[id(n)] = data_and_dead(
                n.id, op.flat_map(n.id, streams[id(n.inputs[0])], fn)
            )
        elif isinstance(n, ProcessNode):
            late_read = n.late is not None and id(n.late) in reachable
            data, late = _keyed_process(
                n, streams[id(n.inputs[0])], flow, counters, fail, recovery, dead, late_read,
                checkpoints, wire(n.inputs[0].out_type), slots,
            )
            streams[id(n)] = data
            if n.late is not None and late is not None and late_read:
                streams[id(n.late)] = op.map(f"{n.late.id}__count", late, _counting_late(
                    n.late.id, counters))
        elif isinstance(n, LateNode):
            pass  # its stream was made by its process step
        elif isinstance(n, MergeNode):
            ups = [streams[id(i)] for i in n.inputs]
            merged = op.merge(n.id, *ups)
            streams[id(n)] = op.map(f"{n.id}__count", merged, _counting(n.id, counters))
        elif isinstance(n, SinkNode):
            _attach_sink(n.id, n.sink, streams[id(n.inputs[0])], counters,
                         wire(n.inputs[0].out_type))
        else:  # pragma: no cover - the graph has no other node kinds
            raise AssertionError(type(n))
    all_dead = op.merge("dead_letters__merge", *dead)
    _attach_sink("dead_letters", default_dead_letter_sink(flow), all_dead, counters)
    stateful = [n.id for n in nodes if isinstance(n, ProcessNode) and n.key_fn is not None]
    return Compiled(df, counters, stateful)


def _counting_late(step: str, counters: Counters) -> Callable[[list[Any]], list[Any]]:
    def count(batch: list[Any]) -> list[Any]:
        counters.add(step, len(batch), len(batch), 0)
        return list(batch)  # a plain list from here on: late events are data downstream

    return count


def _counting(step: str, counters: Counters) -> Callable[[list[Any]], list[Any]]:
    def count(batch: list[Any]) -> list[Any]:
        counters.add(step, len(batch), len(batch), 0)
        return batch

    return count


# --- sources -------------------------------------------------------------------------------


class _BxSourcePartition(StatefulSourcePartition[list[Any], Any]):
    def __init__(
        self, part: SourcePartition[Any], step: str, name: str, counters: Counters
    ) -> None:
        self._part = part
        self._step = step
        self._name = name
        self._counters = counters
        counters.source_size(step, name, part.size_hint(), part.size_unit)

    @override
    def next_batch(self) -> list[list[Any]]:
        started = self._counters.start()
        got = self._part.read_batch()
        if got is None:
            raise StopIteration
        events, dead = got
        # An empty batch is an idle poll (e.g. Kafka with nothing new), not a latency.
        self._counters.add(self._step, len(events) + len(dead), len(events), len(dead),
                           started=started if events or dead else 0.0)
        self._counters.source_size(
            self._step, self._name, self._part.size_hint(), self._part.size_unit
        )
        out: list[list[Any]] = []
        if events:
            out.append(events)
        if dead:
            out.append(_DeadBatch(dead))
        return out

    @override
    def snapshot(self) -> Any:
        return self._part.position()

    @override
    def close(self) -> None:
        self._part.close()


class _BxSource(FixedPartitionedSource[list[Any], Any]):
    def __init__(self, source: Source[Any], step: str, counters: Counters) -> None:
        self._source = source
        self._step = step
        self._counters = counters

    @override
    def list_parts(self) -> list[str]:
        keep_thread_state()  # runs once on each worker thread (see _threads)
        return self._source.partitions()

    @override
    def build_part(
        self, step_id: str, for_part: str, resume_state: Any | None
    ) -> _BxSourcePartition:
        part = self._source.open(for_part, self._step, resume_state)
        return _BxSourcePartition(part, self._step, for_part, self._counters)


# --- stateless steps ----------------------------------------------------------------------


def _function_step(
    n: FunctionNode, counters: Counters, fail: bool
) -> Callable[[list[Any]], list[list[Any]]]:
    fn, step, kind = n.fn, n.id, n.kind

    def apply(batch: list[Any]) -> tuple[list[Any], list[DeadLetter]]:
        out: list[Any] = []
        dead: list[DeadLetter] = []
        i, size = 0, len(batch)
        # A failing event is dead-lettered and the loop resumes after it, without re-running fn
        # on the events before it.
        while i < size:
            j = i
            try:
                if kind == "map":
                    append = out.append
                    for j in range(i, size):
                        append(fn(batch[j]))
                elif kind == "filter":
                    append = out.append
                    for j in range(i, size):
                        e = batch[j]
                        if fn(e):
                            append(e)
                else:
                    extend = out.extend
                    for j in range(i, size):
                        extend(fn(batch[j]))
                break
            except Exception as exc:
                if fail:
                    raise
                dead.append(DeadLetter.from_error(step, exc, batch[j]))
                i = j + 1
        return out, dead

    def run(batch: list[Any]) -> list[list[Any]]:
        started = counters.start()
        out, dead = apply(batch)
        counters.add(step, len(batch), len(out), len(dead), started=started)
        return _emit(out, dead)

    return run


def _emit(out: list[Any], dead: list[DeadLetter]) -> list[list[Any]]:
    items: list[list[Any]] = []
    if out:
        items.append(out)
    if dead:
        items.append(_DeadBatch(dead))
    return items


def _run_processor(
    process: Callable[[Any, Any], None],
    ctx: Context[Any, Any, Any],
    events: Iterator[Any],
    step: str,
    fail: bool,
    dead: list[DeadLetter],
) -> int:
    """Calls ``process`` for every event (``ctx.key`` is bound); returns how many it saw."""
    seen = 0
    while True:
        try:
            for event in events:
                seen += 1
                process(ctx, event)
            return seen
        except Exception as exc:
            if fail:
                raise
            dead.append(DeadLetter.from_error(step, exc, event))


def _stateless_process_step(
    n: ProcessNode, counters: Counters, fail: bool
) -> Callable[[list[Any]], list[list[Any]]]:
    step = n.id
    processor = n.processor
    ctx: Context[Any, Any, Any] = Context(step, None)

    def run(batch: list[Any]) -> list[list[Any]]:
        started = counters.start()
        out: list[Any] = []
        ctx._out = out
        dead: list[DeadLetter] = []
        seen = _run_processor(processor.process, ctx, iter(batch), step, fail, dead)
        counters.add(step, seen, len(out), len(dead), started=started)
        return _emit(out, dead)

    return run


# --- keyed steps ---------------------------------------------------------------------------


_KeyRuns = KeyRuns


class _LateBatch(list[Late[Any, Any]]):
    """Late events of a keyed step travelling beside its data batches."""


class _GroupLogic(StatefulBatchLogic[KeyRuns, list[Any], bytes | None]):
    """bytewax's view of a :class:`KeyGroup`."""

    def __init__(self, spec: KeyGroupSpec, counters: Counters, resume: bytes | None) -> None:
        self._group = KeyGroup(spec, resume)
        self._counters = counters
        counters.groups.watch(spec.step, self._group)
        # Bytes a snapshot wrote to files of its own (incremental checkpoints), beside those
        # it hands to bytewax.
        self._file_bytes: Callable[[], int] | None = None
        if spec.checkpoints is not None and spec.checkpoints.incremental:
            from flowlib.engine._segment_files import FILES

            self._file_bytes = FILES.written_by_this_thread

    @override
    def on_batch(self, values: list[KeyRuns]) -> tuple[list[list[Any]], bool]:
        started = self._counters.start()
        return _group_result(self._group.spec, self._counters, self._group.process(values),
                             started)

    @override
    def on_notify(self) -> tuple[list[list[Any]], bool]:
        started = self._counters.start()
        return _group_result(self._group.spec, self._counters, self._group.wake(), started)

    @override
    def on_eof(self) -> tuple[list[list[Any]], bool]:
        started = self._counters.start()
        return _group_result(self._group.spec, self._counters, self._group.end_of_input(),
                             started)

    @override
    def notify_at(self) -> datetime | None:
        return self._group.next_wakeup()

    @override
    def snapshot(self) -> bytes | None:
        files = self._file_bytes
        before = files() if files is not None else 0
        started = time.perf_counter()
        data = self._group.snapshot()
        seconds = time.perf_counter() - started
        if data is not None:
            size = len(data) + (files() - before if files is not None else 0)
            self._counters.checkpoints.record(self._group.spec.step, seconds, size)
        return data


def _group_result(
    spec: KeyGroupSpec, counters: Counters, res: GroupOutput, started: float
) -> tuple[list[list[Any]], bool]:
    """``res`` as bytewax's ``(emit, is_complete)``: data, dead letters and late events as
    their own batches (late ones as dead letters when the flow does not read them)."""
    late: list[Late[Any, Any]] = res.late
    dead = res.dead
    if late and not spec.late_wired:
        dead = dead + late_as_dead(late)
        late = []
    counters.add(spec.step, res.seen, len(res.out), len(dead), len(late), started)
    items = _emit(res.out, dead)
    if late:
        items.append(_LateBatch(late))
    return items, False


class _AllGroupsLogic(StatefulBatchLogic[dict[str, Any], list[Any], None]):
    """bytewax's view of every key group a worker holds, for runs without recovery: nothing to
    snapshot per group, while each bytewax item costs the same whatever it holds. A batch is
    then one item per worker (its runs per group) instead of one per key group it touches
    (``_slots``). Each group keeps its own state, timers and watermark, exactly as with one
    logic per group."""

    def __init__(self, spec: KeyGroupSpec, counters: Counters) -> None:
        self._spec = spec
        self._counters = counters
        self._groups: dict[str, KeyGroup] = {}
        # When each group next needs wall-clock time (only groups that do).
        self._wakeups: dict[str, datetime] = {}

    def _noted(self, name: str, group: KeyGroup) -> None:
        wakeup = group.next_wakeup()
        if wakeup is not None:
            self._wakeups[name] = wakeup
        elif self._wakeups:
            self._wakeups.pop(name, None)

    @override
    def on_batch(self, values: list[dict[str, Any]]) -> tuple[list[list[Any]], bool]:
        started = self._counters.start()
        res = GroupOutput()
        groups, spec = self._groups, self._spec
        for runs_of in values:
            for name, runs in runs_of.items():
                group = groups.get(name)
                if group is None:
                    group = groups[name] = KeyGroup(spec, None)
                    self._counters.groups.watch(spec.step, group)
                group.process([runs], res)
                self._noted(name, group)
        return _group_result(spec, self._counters, res, started)

    @override
    def on_notify(self) -> tuple[list[list[Any]], bool]:
        started = self._counters.start()
        res = GroupOutput()
        now = self._spec.now()
        for name in [n for n, t in self._wakeups.items() if t <= now]:
            group = self._groups[name]
            group.wake(res)
            self._noted(name, group)
        return _group_result(self._spec, self._counters, res, started)

    @override
    def on_eof(self) -> tuple[list[list[Any]], bool]:
        started = self._counters.start()
        res = GroupOutput()
        for name, group in self._groups.items():
            group.end_of_input(res)
            self._noted(name, group)
        return _group_result(self._spec, self._counters, res, started)

    @override
    def notify_at(self) -> datetime | None:
        return min(self._wakeups.values()) if self._wakeups else None

    @override
    def snapshot(self) -> None:
        return None  # never asked for: this logic serves runs without recovery


def _keyed_process(
    n: ProcessNode,
    up: BxStream[Any],
    flow: Flow,
    counters: Counters,
    fail: bool,
    recovery: bool,
    dead: list[BxStream[Any]],
    late_read: bool,
    checkpoints: Checkpoints | None = None,
    wire: Wire | None = None,
    slots: list[str] | None = None,
) -> tuple[BxStream[Any], BxStream[Any] | None]:
    """The data stream of a keyed step, and its late stream when the flow reads it; ``wire``
    pickles the key runs that cross processes. With ``slots`` (one bytewax key per worker, no
    recovery) a batch's runs go as one item per worker to a :class:`_AllGroupsLogic` holding
    the worker's groups; without, each key group is its own bytewax key and logic."""
    key_fn = n.key_fn
    assert key_fn is not None
    group = group_of(codec_for(n.key_type), flow.max_key_groups)
    step = n.id
    ordered = n.event_time is not None
    micros = timed_routing(step, n.processor, n.event_time)
    combiner = combiner_of(n.processor, n.event_time is not None)
    # The worker's key of each group (groups spread evenly), or the one key of a lone worker.
    slot_of = (None if slots is None
               else {str(g): slots[g % len(slots)] for g in range(flow.max_key_groups)})
    single = slots[0] if slots is not None and len(slots) == 1 else None

    def route(batch: list[Any]) -> list[Any]:
        groups, failed = route_batch(
            batch, key_fn, group, step=step, fail=fail, ordered=ordered, micros=micros
        )
        parts: dict[str, Any]
        if combiner is not None:  # only partials cross to the key groups (_combine)
            parts = {g: combine_runs(combiner, r, wire) for g, r in groups.items()}
        elif wire is not None:  # runs sent to another process pickle fast (_wire)
            parts = {g: wire.wrap(r) for g, r in groups.items()}
        else:
            parts = groups
        items: list[Any]
        if slot_of is None:
            items = list(parts.items())
        elif single is not None:
            items = [(single, parts)] if parts else []
        else:
            by_slot: dict[str, dict[str, Any]] = {}
            for g, runs in parts.items():
                slot = slot_of[g]
                of_slot = by_slot.get(slot)
                if of_slot is None:
                    by_slot[slot] = {g: runs}
                else:
                    of_slot[g] = runs
            items = list(by_slot.items())
        if failed:
            counters.add(step, len(failed), 0, len(failed))
            items.append(("", _DeadBatch(failed)))
        return items

    routed = op.flat_map(f"{step}__route", up, route)
    b = op.branch(f"{step}__route_split", routed, _is_data_pair)
    dead.append(op.map(f"{step}__route_dead", b.falses, itemgetter(1)))
    spec = KeyGroupSpec(
        step, n.processor, n.key_type, n.state_type, n.state, n.event_time,
        late_wired=late_read, fail=fail, recovery=recovery, checkpoints=checkpoints,
    )

    def build(resume: bytes | None) -> StatefulBatchLogic[Any, list[Any], Any]:
        if slots is not None:
            return _AllGroupsLogic(spec, counters)
        return _GroupLogic(spec, counters, resume)

    out = op.stateful_batch(step, b.trues, build)
    data = _split_dead(step, op.map(f"{step}__unkey", out, itemgetter(1)), dead)
    if not late_read:
        return data, None
    b2 = op.branch(f"{step}__late_split", data, _is_late)
    return b2.falses, b2.trues


def _split_dead(step: str, s: BxStream[Any], dead: list[BxStream[Any]]) -> BxStream[Any]:
    b = op.branch(f"{step}__split", s, _is_data)
    dead.append(b.falses)
    return b.trues


# --- sinks ---------------------------------------------------------------------------------


class _BxSinkPartition(StatefulSinkPartition[list[Any], Any]):
    def __init__(self, part: SinkPartition[Any], step: str, counters: Counters) -> None:
        self._part = part
        self._step = step
        self._counters = counters

    @override
    def write_batch(self, values: list[list[Any]]) -> None:
        started = self._counters.start()
        items = values[0] if len(values) == 1 else [x for batch in values for x in batch]
        self._part.write_batch(items)
        self._counters.add(self._step, len(items), len(items), 0, started=started)

    @override
    def snapshot(self) -> Any:
        return self._part.position()

    @override
    def close(self) -> None:
        self._part.close()


class _BxSink(FixedPartitionedSink[list[Any], Any]):
    def __init__(self, sink: Sink[Any], step: str, counters: Counters) -> None:
        self._sink = sink
        self._step = step
        self._counters = counters

    @override
    def list_parts(self) -> list[str]:
        return self._sink.partitions()

    @override
    def part_fn(self, item_key: str) -> int:
        return int(item_key)

    @override
    def build_part(
        self, step_id: str, for_part: str, resume_state: Any | None
    ) -> _BxSinkPartition:
        return _BxSinkPartition(self._sink.open(for_part, resume_state), self._step, self._counters)


def _attach_sink(
    step: str, sink: Sink[Any], up: BxStream[Any], counters: Counters, wire: Wire | None = None
) -> None:
    def wrap(batch: list[Any]) -> list[Any]:
        # Batches sent to another process's sink partition pickle fast when the type allows.
        return batch if wire is None else wire.wrap_events(batch)

    if len(sink.partitions()) == 1:
        def route(batch: list[Any]) -> list[tuple[str, list[Any]]]:
            return [("0", wrap(batch))]
    else:
        part_of = sink.partition_of

        def route(batch: list[Any]) -> list[tuple[str, list[Any]]]:
            parts: dict[str, list[Any]] = {}
            for x in batch:
                parts.setdefault(str(part_of(x)), []).append(x)
            return [(p, wrap(xs)) for p, xs in parts.items()]

    keyed = op.flat_map(f"{step}__partition", up, route)
    op.output(step, keyed, _BxSink(sink, step, counters))
