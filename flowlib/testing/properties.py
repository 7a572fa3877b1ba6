"""Checks for property tests of processors: call them inside a ``@given`` test.

Each takes ``make``, a function building a fresh :class:`~flowlib.testing.ProcessorHarness`
(the processor and its options), and events (drawn with :mod:`flowlib.testing.strategies`);
each fails with a typed diff (:func:`~flowlib.testing.assert_outputs`).

>>> from operators.aggregate import Count, Keyed
>>> from flowlib.testing import ProcessorHarness
>>> def make() -> ProcessorHarness[str, Keyed[str, int], str, int]:
...     return ProcessorHarness(Count(), key=lambda w: w, key_type=str)
>>> words = ["a", "b", "a", "c"]
>>> assert_snapshot_restore_identity(make, words, split=2)
>>> assert_order_insensitive(make, words, list(reversed(words)))
>>> assert_engine_agrees(make, words)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flowlib.dead_letter import DeadLetter
from flowlib.testing._diff import OutputMismatch, assert_outputs, diff_outputs
from flowlib.testing._harness import ProcessorHarness

__all__ = [
    "assert_engine_agrees",
    "assert_order_insensitive",
    "assert_snapshot_restore_identity",
]

In = TypeVar("In")
Out = TypeVar("Out")
K = TypeVar("K")
V = TypeVar("V")

Make = Callable[[], ProcessorHarness[In, Out, K, V]]

def _feed(h: ProcessorHarness[In, Out, K, V], events: Sequence[In]) -> None:
    for e in events:
        h.push(e)


def assert_snapshot_restore_identity(
    make: Make[In, Out, K, V], events: Sequence[In], split: int
) -> None:
    """Snapshot after ``events[:split]`` and restore into a fresh harness: the state is the
    same, and the rest of the events (then end of input) give the same outputs, late events and
    dead letters as in the harness that never stopped."""
    split = max(0, min(split, len(events)))
    original = make()
    _feed(original, events[:split])
    snap = original.snapshot()
    restored = make()
    restored.restore(snap)
    assert_outputs(
        sorted(restored.state.items(), key=repr), sorted(original.state.items(), key=repr)
    )
    assert restored.watermark == original.watermark, (restored.watermark, original.watermark)
    assert restored.timers == original.timers, (restored.timers, original.timers)
    mark = (len(original.outputs), len(original.late), len(original.dead_letters))
    _feed(original, events[split:])
    original.end_of_input()
    _feed(restored, events[split:])
    restored.end_of_input()
    _same_results(
        "restored", restored.outputs, restored.late, restored.dead_letters,
        "uninterrupted", original.outputs[mark[0]:], original.late[mark[1]:],
        original.dead_letters[mark[2]:], ordered=True,
    )


def assert_order_insensitive(
    make: Make[In, Out, K, V], events: Sequence[In], reordered: Sequence[In]
) -> None:
    """``events`` and ``reordered`` (e.g. from :func:`~flowlib.testing.strategies.out_of_order`
    within the max out-of-orderness) give the same outputs, as multisets, and no late event."""
    first, second = make(), make()
    _feed(first, events)
    first.end_of_input()
    _feed(second, reordered)
    second.end_of_input()
    for label, h in (("in order", first), ("reordered", second)):
        if h.late:
            msg = f"{len(h.late)} late event(s) {label}, e.g. {h.late[0]!r}"
            raise OutputMismatch(msg)
    _same_results(
        "reordered", second.outputs, second.late, second.dead_letters,
        "in order", first.outputs, first.late, first.dead_letters, ordered=False,
    )


def assert_engine_agrees(
    make: Make[In, Out, K, V], events: Sequence[In], *, workers: int = 1
) -> None:
    """The harness (one ``push`` per event, then end of input) and a real engine run of the
    same step over the same events (one event per batch) give the same outputs, late events
    and dead letters, as multisets."""
    h = make()
    _feed(h, events)
    h.end_of_input()
    engine = make().run_engine(events, workers=workers)
    _same_results(
        "harness", h.outputs, h.late, h.dead_letters,
        "engine", engine.outputs, engine.late, engine.dead_letters, ordered=False,
    )


def _same_results(
    a_name: str, a_out: Sequence[Any], a_late: Sequence[Any], a_dead: Sequence[DeadLetter],
    b_name: str, b_out: Sequence[Any], b_late: Sequence[Any], b_dead: Sequence[DeadLetter],
    *, ordered: bool,
) -> None:
    labels = (a_name, b_name)
    problems: list[str] = []
    for what, x, y in (
        ("outputs", a_out, b_out),
        ("late events", a_late, b_late),
        ("dead letters", _dead_keys(a_dead), _dead_keys(b_dead)),
    ):
        lines = diff_outputs(x, y, ordered=ordered, labels=labels)
        if lines:
            problems += [f"{what}: {lines[0]}", *lines[1:]]
    if problems:
        raise OutputMismatch("\n".join(problems))


def _dead_keys(dead: Sequence[DeadLetter]) -> list[tuple[str, str, str, str]]:
    """A dead letter without its processing time, which differs between runs."""
    return [(d.step, d.error_type, d.error, d.record) for d in dead]
