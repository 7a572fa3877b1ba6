"""Combining: keyed processors that pre-aggregate each key's run of events before the exchange.

A keyed step sends every event to the worker that owns its key group; with several processes
most of them are pickled across. A processor that folds its events into an accumulator can
declare :class:`Combinable`: the routing step then folds each key's run of an upstream batch
into a *partial* (:meth:`Combinable.partial`) on the worker that read the batch, only the
partials cross to the key group, and the key group folds each into the key's state
(:meth:`Combinable.merge_partial`) instead of calling :meth:`~flowlib.Processor.process` per
event. This is Beam's combiner lifting, Flink's local-global aggregation, Spark's map-side
combine.

The engine combines only on steps whose stream has no event time: an event-time step decides
lateness per event against the watermark of the key group, which the routing step does not
know. There, and whenever combining is off, the processor runs as any other processor.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

from flowlib.processor import Context, Processor

__all__ = ["Combinable"]

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out")
K = TypeVar("K")
V = TypeVar("V")
P = TypeVar("P")


class Combinable(Processor[In, Out, K, V], Generic[In, Out, K, V, P]):
    """A keyed processor whose effect on a run of events can be pre-computed as a partial ``P``.

    The contract, for any run ``events`` of key ``key`` in arrival order: calling
    ``merge_partial(ctx, partial(key, events))`` with ``ctx.key == key`` leaves the state (and
    emits) as calling ``process(ctx, e)`` for each event would (up to float rounding when
    values are summed in another order). :meth:`partial` runs on the worker that routes the
    batch, possibly in another process than the key's state, so it must not use a context or
    shared mutable data, and its result must be picklable (and small: it is what crosses).

    If :meth:`partial` raises (a bad event), the engine sends that run's events instead, and
    the key group calls ``process``/``process_batch`` on them as usual: exactly the bad events
    go to the dead letters. :meth:`merge_partial` must not fail on what :meth:`partial`
    returned; if it does, one dead letter records the key and the partial (or
    the run stops, with ``on_error="fail"``). Record counters count events, not partials.

    ``combines`` (default True) may be set to False on an instance to turn combining off, e.g.
    to compare with the uncombined run.

    >>> from flowlib import Context, DeadLetter, Flow, ListSink, ListSource
    >>> from flowlib.engine import run
    >>> class Total(Combinable[int, tuple[str, int], str, int, int]):
    ...     state_type = int
    ...     def process(self, ctx: Context[str, int, tuple[str, int]], event: int) -> None:
    ...         ctx.state.set(ctx.state.get(0) + event)
    ...     def partial(self, key: str, events: Sequence[int]) -> int:
    ...         return sum(events)
    ...     def merge_partial(self, ctx: Context[str, int, tuple[str, int]], partial: int) -> None:
    ...         ctx.state.set(ctx.state.get(0) + partial)
    ...     def on_eof(self, ctx: Context[str, int, tuple[str, int]]) -> None:
    ...         ctx.emit((ctx.key, ctx.state.get(0)))
    >>> flow, out = Flow("totals", dead_letters=ListSink(DeadLetter)), ListSink()
    >>> nums = flow.source(ListSource([1, 2, 3, 4, 5], int))
    >>> nums.key_by(lambda n: "odd" if n % 2 else "even", key_type=str).process(Total()).sink(out)
    >>> report = run(flow)
    >>> sorted(out.items), report.step("Total").records_in
    ([('even', 6), ('odd', 9)], 5)
    """

    combines: bool = True
    """Whether the engine may combine this processor's runs (an instance may turn it off)."""

    @abstractmethod
    def partial(self, key: K, events: Sequence[In]) -> P:
        """The partial of a run of ``key``'s events (in arrival order): no context, no state."""

    @abstractmethod
    def merge_partial(self, ctx: Context[K, V, Out], partial: P) -> None:
        """Fold ``partial`` into the state of ``ctx.key``, as :meth:`process` would its run."""

