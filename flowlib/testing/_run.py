"""run_flow: a whole flow run in this process with test inputs, its sinks collected in memory."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, get_origin, overload

from flowlib._graph import LateNode, Node, ProcessNode, SinkNode, SourceNode, walk
from flowlib._types import type_name
from flowlib.connectors.base import Sink, Source
from flowlib.connectors.memory import ListSink
from flowlib.dead_letter import DeadLetter
from flowlib.engine import RunReport, run
from flowlib.flow import Flow, Stream
from flowlib.testing._source import CrashPlan, SimulatedCrash, TestSource

__all__ = ["FlowResult", "FlowRunner", "Inputs", "run_flow"]

T = TypeVar("T")

Inputs = Mapping[Source[Any] | Stream[Any] | str, Iterable[Any]]
"""Events per source: keyed by the source object, the stream ``flow.source`` returned, or the
source step's id."""


@dataclass
class FlowResult:
    """What :func:`run_flow` collected: each sink's items, the dead letters, the report.

    >>> from flowlib import Flow, ListSink
    >>> flow = Flow("double")
    >>> numbers, doubled = TestSource(int), ListSink(int)
    >>> flow.source(numbers).map(lambda x: 2 * x).sink(doubled)
    >>> result = run_flow(flow, {numbers: [1, 2, 3]})
    >>> result.outputs(doubled), result.dead_letters
    ([2, 4, 6], [])
    """

    report: RunReport
    """Per-step counts of the run that completed: after a crash, of the resumed run alone
    (the crashed run's counts die with it, as in a real crash)."""
    dead_letters: list[DeadLetter]
    """Dead letters of all steps (of the crashed and the resumed run, exactly once)."""
    crashed: bool = False
    """Whether the first run crashed at ``crash_after`` (and a second run resumed it)."""
    _by_sink: dict[int, list[ListSink[Any]]] = field(default_factory=dict, repr=False)
    _by_step: dict[str, ListSink[Any]] = field(default_factory=dict, repr=False)

    @property
    def sinks(self) -> list[str]:
        """The step ids of the flow's sinks."""
        return list(self._by_step)

    @overload
    def outputs(self, sink: Sink[T]) -> list[T]: ...
    @overload
    def outputs(self, sink: str) -> list[Any]: ...
    def outputs(self, sink: Sink[Any] | str) -> list[Any]:
        """The items written to ``sink`` (the flow's sink object, or its step id)."""
        if isinstance(sink, str):
            if sink not in self._by_step:
                msg = f"no sink step {sink!r}; the flow's sinks are {self.sinks}"
                raise KeyError(msg)
            return list(self._by_step[sink].items)
        found = self._by_sink.get(id(sink))
        if found is None:
            msg = f"{type(sink).__name__} is not a sink of the flow; its sinks are {self.sinks}"
            raise KeyError(msg)
        return [x for s in found for x in s.items]


def run_flow(
    flow: Flow,
    inputs: Inputs | None = None,
    *,
    workers: int = 1,
    batch_size: int = 1,
    crash_after: int | None = None,
    recovery_dir: str | os.PathLike[str] | None = None,
    snapshot_interval: timedelta | None = None,
) -> FlowResult:
    """Run ``flow`` on bytewax in this process with test inputs; collect every sink.

    The flow itself is not changed: the run uses a copy whose sources listed in ``inputs``
    (and every :class:`TestSource`) read the given events ``batch_size`` at a time, whose sinks
    are in-memory lists, and whose dead letters are collected in :attr:`FlowResult.dead_letters`.
    Sources not listed (e.g. files) are read as they are.

    ``workers`` runs that many worker threads. ``crash_after=N`` tests recovery: the first run
    checkpoints into ``recovery_dir`` (a temporary directory by default) and crashes with
    :class:`SimulatedCrash` once its sources have read ``N`` events; a second run resumes from
    the last checkpoint. The result holds the combined output, exactly once, which must equal an
    uninterrupted run's (in some order when ``workers > 1``). ``snapshot_interval`` defaults to
    zero (a checkpoint per batch) whenever recovery is on.
    """
    if crash_after is not None and crash_after < 0:
        msg = f"crash_after must be at least 0, got {crash_after}"
        raise ValueError(msg)
    plan = CrashPlan(crash_after) if crash_after is not None else None
    copy, by_sink, by_step, dead, fed = _test_copy(flow, inputs or {}, batch_size, plan)
    if plan is not None and fed is not None and crash_after is not None and crash_after > fed:
        msg = f"crash_after={crash_after} but the flow's sources hold only {fed} events"
        raise ValueError(msg)
    recovery = recovery_dir is not None or plan is not None
    interval = snapshot_interval if snapshot_interval is not None else (
        timedelta(0) if recovery else timedelta(seconds=10)
    )
    crashed = False
    with tempfile.TemporaryDirectory(prefix="flowlib-recovery-") as tmp:
        directory: str | os.PathLike[str] | None = recovery_dir
        if directory is None and recovery:
            directory = Path(tmp) / "recovery"
        try:
            report = run(
                copy, workers_per_process=workers, recovery_dir=directory,
                snapshot_interval=interval,
            )
        except SimulatedCrash:
            assert plan is not None
            crashed, plan.armed = True, False
            report = run(
                copy, workers_per_process=workers, recovery_dir=directory,
                snapshot_interval=interval,
            )
    return FlowResult(report, dead.items, crashed, by_sink, by_step)


class FlowRunner:
    """The ``flow_runner`` fixture: :func:`run_flow` with recovery directories under a test's
    temporary directory (kept for inspection when a test fails).

    >>> import tempfile
    >>> from flowlib import Flow, ListSink
    >>> runner = FlowRunner(Path(tempfile.mkdtemp()))
    >>> flow, src, out = Flow("copy"), TestSource(str), ListSink(str)
    >>> flow.source(src).sink(out)
    >>> runner(flow, {src: ["a", "b"]}, crash_after=1).outputs(out)
    ['a', 'b']
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._runs = 0

    def __call__(
        self,
        flow: Flow,
        inputs: Inputs | None = None,
        *,
        workers: int = 1,
        batch_size: int = 1,
        crash_after: int | None = None,
        recovery_dir: str | os.PathLike[str] | None = None,
        snapshot_interval: timedelta | None = None,
    ) -> FlowResult:
        if recovery_dir is None and crash_after is not None:
            self._runs += 1
            recovery_dir = self.base / f"recovery-{self._runs}"
        return run_flow(
            flow, inputs, workers=workers, batch_size=batch_size, crash_after=crash_after,
            recovery_dir=recovery_dir, snapshot_interval=snapshot_interval,
        )


# --- the test copy of a flow -----------------------------------------------------------------


def _source_key(key: object, nodes: list[Node]) -> SourceNode:
    sources = [n for n in nodes if isinstance(n, SourceNode)]
    for n in sources:
        if (
            key is n.source
            or (isinstance(key, Stream) and key.node is n)
            or (isinstance(key, str) and key == n.id)
        ):
            return n
    names = ", ".join(repr(n.id) for n in sources)
    label = repr(key) if isinstance(key, str) else type(key).__name__
    msg = f"inputs name {label}, which is not a source of this flow (its sources: {names})"
    raise KeyError(msg)


def _check_items(step: str, item_type: object, items: list[Any]) -> None:
    cls = get_origin(item_type) or item_type
    if not isinstance(cls, type) or cls is object or cls is Any:
        return
    for i, x in enumerate(items):
        if not isinstance(x, cls) and not (cls is float and isinstance(x, int)):
            msg = (
                f"source {step!r} produces {type_name(item_type)}, but its test input "
                f"#{i} is a {type(x).__name__}: {x!r}"
            )
            raise TypeError(msg)


def _test_copy(
    flow: Flow, inputs: Inputs, batch_size: int, plan: CrashPlan | None
) -> tuple[
    Flow, dict[int, list[ListSink[Any]]], dict[str, ListSink[Any]], ListSink[DeadLetter],
    int | None,
]:
    """A copy of the graph with test sources and in-memory sinks; shares functions and
    processors. Also returns how many events the sources hold (``None`` if some are not fed)."""
    nodes = walk(flow.sinks)
    feeds: dict[int, list[Any]] = {}
    for key, given in inputs.items():
        node = _source_key(key, nodes)
        feeds[id(node)] = list(given)
        _check_items(node.id, node.source.item_type, feeds[id(node)])
    copies: dict[int, Node] = {}
    by_sink: dict[int, list[ListSink[Any]]] = {}
    by_step: dict[str, ListSink[Any]] = {}
    fed: int | None = 0
    for n in nodes:
        inputs_copy = [copies[id(i)] for i in n.inputs]
        new: Node
        if isinstance(n, SourceNode):
            src = n.source
            items = feeds.get(id(n))
            if items is None and isinstance(src, TestSource):
                items = list(src.items)
            if items is not None:
                if fed is not None:
                    fed += len(items)
                test_src = TestSource[Any](src.item_type, items, batch_size=batch_size)
                test_src._plan = plan
                new = dataclasses.replace(n, inputs=inputs_copy, source=test_src)
            else:
                fed = None
                new = dataclasses.replace(n, inputs=inputs_copy)
        elif isinstance(n, SinkNode):
            sink = ListSink[Any]()
            sink.item_type = n.sink.item_type
            by_sink.setdefault(id(n.sink), []).append(sink)
            by_step[n.id] = sink
            new = dataclasses.replace(n, inputs=inputs_copy, sink=sink)
        else:
            new = dataclasses.replace(n, inputs=inputs_copy)
        copies[id(n)] = new
    for n in nodes:
        if isinstance(n, ProcessNode) and n.late is not None:
            late = copies.get(id(n.late))
            copy = copies[id(n)]
            assert isinstance(copy, ProcessNode)
            copy.late = late if isinstance(late, LateNode) else None
    dead = ListSink(DeadLetter)
    out = Flow(flow.name, max_key_groups=flow.max_key_groups, on_error=flow.on_error,
               dead_letters=dead)
    out.sinks = [c for n in flow.sinks if isinstance(c := copies[id(n)], SinkNode)]
    out._ids = set(flow._ids)
    return out, by_sink, by_step, dead, fed
