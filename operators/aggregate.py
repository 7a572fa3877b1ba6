"""Keyed aggregations that emit one result per key at the end of a bounded input.

:class:`Count` counts, :class:`Fold` folds with a function (no merge, so never combined), and
:class:`Aggregated` folds with an :class:`~operators.aggregations.Aggregate`, whose ``merge``
lets the engine pre-aggregate each key's runs before they cross between processes
(:mod:`flowlib.combining`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from typing_extensions import override

from flowlib.combining import Combinable
from flowlib.processor import Context, Processor
from operators.aggregations import Aggregate

__all__ = ["Aggregated", "Count", "Fold", "Keyed"]

T = TypeVar("T")
K = TypeVar("K")
A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Keyed(Generic[K, A]):
    """A key and the value computed for it."""

    key: K
    value: A


class Count(Processor[T, Keyed[K, int], K, int]):
    """Counts events per key; emits ``Keyed(key, count)`` for every key at end of input.

    >>> from flowlib import DeadLetter, Flow, ListSink, ListSource
    >>> from flowlib.engine import run
    >>> flow, out = Flow("count", dead_letters=ListSink(DeadLetter)), ListSink()
    >>> words = flow.source(ListSource(["a", "b", "a"], str))
    >>> words.key_by(lambda w: w, key_type=str).process(Count()).sink(out)
    >>> _ = run(flow)
    >>> sorted((k.key, k.value) for k in out.items)
    [('a', 2), ('b', 1)]
    """

    state_type = int

    @override
    def process(self, ctx: Context[K, int, Keyed[K, int]], event: T) -> None:
        ctx.state.set(ctx.state.get(0) + 1)

    @override
    def on_eof(self, ctx: Context[K, int, Keyed[K, int]]) -> None:
        ctx.emit(Keyed(ctx.key, ctx.state.get(0)))


class Fold(Processor[T, Keyed[K, A], K, A]):
    """Folds events per key with ``step(acc, event)`` from ``initial()``; emits at end of input.

    ``state_type`` is the accumulator's type: it fixes the Arrow schema of checkpoints.

    >>> fold = Fold(int, lambda acc, x: acc + x, state_type=int)
    >>> fold.state_type
    <class 'int'>
    """

    def __init__(
        self, initial: Callable[[], A], step: Callable[[A, T], A], *, state_type: type[A]
    ) -> None:
        self.initial = initial
        self.step = step
        self.state_type = state_type

    @override
    def process(self, ctx: Context[K, A, Keyed[K, A]], event: T) -> None:
        acc = ctx.state.get_optional()
        ctx.state.set(self.step(self.initial() if acc is None else acc, event))

    @override
    def on_eof(self, ctx: Context[K, A, Keyed[K, A]]) -> None:
        acc = ctx.state.get_optional()
        if acc is not None:
            ctx.emit(Keyed(ctx.key, acc))


class Aggregated(Combinable[T, Keyed[K, R], K, A, A]):
    """Folds each key's events with ``aggregate``; emits ``Keyed(key, result)`` for every key at
    end of input.

    The state of a key is the aggregate's accumulator (``state_type`` is its ``acc_type``, the
    Arrow schema of checkpoints). On streams without event time the engine combines
    (:mod:`flowlib.combining`): each key's run of an upstream batch is folded into a fresh
    accumulator by the worker that routes the batch, and only that crosses to the key group,
    which merges it into the key's state with ``aggregate.merge``. Float sums (so means and
    deviations too) may then round differently from adding event by event, since subtotals
    are added; counts, minima, maxima, and with one worker ``First``/``Last``/``Collect``, are
    exactly as without combining. ``combine=False`` sends every event across instead.

    >>> from flowlib import DeadLetter, Flow, ListSink, ListSource
    >>> from flowlib.engine import run
    >>> from operators.aggregations import Count, Max, Multi, Sum
    >>> flow, out = Flow("agg", dead_letters=ListSink(DeadLetter)), ListSink()
    >>> latencies = flow.source(ListSource([("a", 2.0), ("b", 1.0), ("a", 5.0)], tuple[str, float]))
    >>> stats = Multi(Count(), Sum(lambda e: e[1]), Max(lambda e: e[1]))
    >>> latencies.key_by(lambda e: e[0], key_type=str).process(Aggregated(stats)).sink(out)
    >>> _ = run(flow)
    >>> sorted((k.key, k.value) for k in out.items)
    [('a', (2, 7.0, 5.0)), ('b', (1, 1.0, 1.0))]
    """

    def __init__(self, aggregate: Aggregate[T, A, R], *, combine: bool = True) -> None:
        self.aggregate = aggregate
        self.state_type: object = aggregate.acc_type
        self.combines = combine

    @override
    def process(self, ctx: Context[K, A, Keyed[K, R]], event: T) -> None:
        agg = self.aggregate
        acc = ctx.state.get_optional()
        ctx.state.set(agg.add(agg.create() if acc is None else acc, event))

    @override
    def process_batch(
        self, ctx: Context[K, A, Keyed[K, R]], events: Sequence[T], times: Sequence[int] | None
    ) -> None:
        agg = self.aggregate
        if agg.atomic_ranges:  # add_range leaves the accumulator as it was if it raises
            acc = ctx.state.get_optional()
            try:
                folded = agg.add_range(
                    agg.create() if acc is None else acc, agg.prepare(events), 0, len(events)
                )
            except Exception:
                pass  # redone event by event below, so that only the bad events dead-letter
            else:
                ctx.state.set(folded)
                return
        super().process_batch(ctx, events, times)

    @override
    def partial(self, key: K, events: Sequence[T]) -> A:
        # A fresh accumulator: a failure part-way (even of a non-atomic add) touches no state.
        agg = self.aggregate
        return agg.add_range(agg.create(), agg.prepare(events), 0, len(events))

    @override
    def merge_partial(self, ctx: Context[K, A, Keyed[K, R]], partial: A) -> None:
        acc = ctx.state.get_optional()
        ctx.state.set(partial if acc is None else self.aggregate.merge(acc, partial))

    @override
    def on_eof(self, ctx: Context[K, A, Keyed[K, R]]) -> None:
        acc = ctx.state.get_optional()
        if acc is not None:
            ctx.emit(Keyed(ctx.key, self.aggregate.result(acc)))
