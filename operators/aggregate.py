"""Keyed aggregations that emit one result per key at the end of a bounded input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from typing_extensions import override

from flowlib.processor import Context, Processor

__all__ = ["Count", "Fold", "Keyed"]

T = TypeVar("T")
K = TypeVar("K")
A = TypeVar("A")


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
