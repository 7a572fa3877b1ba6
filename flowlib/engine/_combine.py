"""Combining before the exchange: key runs folded into partials by the routing step, merged by
the key group (see :mod:`flowlib.combining`). Engine-agnostic, like ``_group``."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any, cast

from flowlib.combining import Combinable
from flowlib.dead_letter import DeadLetter
from flowlib.processor import Context, Processor

if TYPE_CHECKING:
    from flowlib.codecs._wire import Wire
    from flowlib.engine._group import GroupOutput, KeyRuns

__all__ = ["Combined", "apply_combined", "combine_runs", "combiner_of"]


class Combined:
    """One key group's share of an upstream batch, combined: ``partials`` holds
    ``(key, partial)`` per key whose run folded, ``raw`` the :data:`KeyRuns` of the keys whose
    run did not (shipped as events so that the key group dead-letters exactly the bad ones),
    ``events`` how many events the partials stand for (the step counts events)."""

    __slots__ = ("_pickled", "events", "partials", "raw")
    _pickled: bytes

    def __init__(self, partials: list[tuple[Any, Any]], raw: KeyRuns, events: int) -> None:
        self.partials = partials
        self.raw = raw
        self.events = events

    def __reduce__(self) -> tuple[Any, ...]:
        # bytewax pickles an item twice (to size its message, then to write it) and an item
        # does not change once routed: pickle the contents once, then copy the bytes. ``raw``
        # pickles through its wire.
        try:
            data = self._pickled
        except AttributeError:
            data = self._pickled = pickle.dumps(
                (self.partials, self.raw, self.events), pickle.HIGHEST_PROTOCOL
            )
        return (_unpickle_combined, (data,))


def _unpickle_combined(data: bytes) -> Combined:
    return Combined(*pickle.loads(data))


def combiner_of(
    processor: Processor[Any, Any, Any, Any], timed: bool
) -> Combinable[Any, Any, Any, Any, Any] | None:
    """``processor`` if its runs should be combined on a step with (``timed``) or without
    event time, else ``None``. Event-time steps decide lateness per event against the key
    group's watermark, which the routing step does not know: never combined."""
    if timed or not isinstance(processor, Combinable) or not processor.combines:
        return None
    return processor


def combine_runs(
    combiner: Combinable[Any, Any, Any, Any, Any], runs: KeyRuns, wire: Wire | None
) -> Combined:
    """``runs`` (one per key: untimed routing groups a batch by key) as partials; a run whose
    partial raises stays events (wrapped by ``wire`` when it may leave the process)."""
    partial = combiner.partial
    partials: list[tuple[Any, Any]] = []
    raw: KeyRuns = []
    events = 0
    for key, run in runs:
        try:
            partials.append((key, partial(key, run)))
        except Exception:
            raw.append((key, run))
            continue
        events += len(run)
    return Combined(partials, raw if wire is None or not raw else wire.wrap(raw), events)


def apply_combined(
    processor: Processor[Any, Any, Any, Any],
    ctx: Context[Any, Any, Any],
    combined: Combined,
    res: GroupOutput,
    fail: bool,
) -> KeyRuns:
    """Merge ``combined``'s partials into their keys' state (``ctx`` writes ``res``); returns
    its raw runs, for the caller's usual path. Only a :class:`Combinable` ``processor`` gets
    :class:`Combined` items (``combiner_of``)."""
    merge = cast(Combinable[Any, Any, Any, Any, Any], processor).merge_partial
    for key, partial in combined.partials:
        ctx.key = key
        try:
            merge(ctx, partial)
        except Exception as exc:
            if fail:
                raise
            # The events are gone: the partial stands for them (see Combinable).
            record = {"key": key, "partial": partial}
            res.dead.append(DeadLetter.from_error(ctx.step, exc, record))
    res.seen += combined.events
    return combined.raw
