"""Routing a batch to key groups: keys (failures become dead letters), then runs per group."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from operator import le
from typing import Any

from flowlib.dead_letter import DeadLetter
from flowlib.engine._group import KeyRuns, TimedRuns, uses_batches
from flowlib.engine._keygroups import GroupOf
from flowlib.engine._timing import Micros
from flowlib.errors import FlowlibError
from flowlib.processor import Processor
from flowlib.time import EventTime

__all__ = ["route_batch", "timed_routing"]


def timed_routing(
    step: str, processor: Processor[Any, Any, Any, Any], event_time: EventTime[Any] | None
) -> Micros | None:
    """The time reader to route with when the step takes the batch path of event time."""
    if event_time is None or not uses_batches(processor, event_time):
        return None
    return Micros(event_time, step)


def route_batch(
    batch: list[Any],
    key_fn: Callable[[Any], Any],
    group: GroupOf,
    *,
    step: str,
    fail: bool,
    ordered: bool,
    micros: Micros | None = None,
) -> tuple[dict[str, Any], list[DeadLetter]]:
    """The runs of each key group of ``batch``, and dead letters for keys that failed.

    ``ordered`` (event-time steps, whose watermark advances per event) keeps arrival order
    within each group; otherwise events are grouped by key, which is cheaper. With ``micros``
    (event-time steps on the batch path) each group gets :class:`TimedRuns` instead: the events'
    times too, grouped by key when the batch's times never decrease, else in arrival order.
    """
    failed: list[DeadLetter] = []
    try:
        keys = list(map(key_fn, batch))  # no Python frame per event for C-level key_fns
        ok = batch
    except Exception:
        if fail:
            raise
        keys, ok = [], []
        for e in batch:
            try:
                keys.append(key_fn(e))
                ok.append(e)
            except Exception as exc:
                failed.append(DeadLetter.from_error(f"{step}.key_by", exc, e))
    if micros is not None:
        return _route_timed(keys, ok, group, micros, step, fail, failed)
    split = _by_group_in_order if ordered else _by_group
    try:
        return split(keys, ok, group), failed
    except TypeError:
        kept = _hashable_rows(keys, ok, step, fail, failed)
        if kept is None:
            raise
        return split([keys[i] for i in kept], [ok[i] for i in kept], group), failed


def _hashable_rows(
    keys: list[Any], events: list[Any], step: str, fail: bool, failed: list[DeadLetter]
) -> list[int] | None:
    """After a TypeError while grouping: the positions of the events whose key hashes, the
    others dead-lettered (or the run failed); ``None`` when every key hashes (the error came
    from elsewhere)."""
    bad = [(e, msg) for k, e in zip(keys, events, strict=True)
           if (msg := _unhashable_key(k)) is not None]
    if not bad:
        return None
    if fail:
        raise FlowlibError(f"step {step!r}: {bad[0][1]}") from None
    failed += [DeadLetter.from_error(f"{step}.key_by", FlowlibError(m), e) for e, m in bad]
    return [i for i, k in enumerate(keys) if _unhashable_key(k) is None]


def _by_group(keys: list[Any], events: list[Any], group: GroupOf) -> dict[str, KeyRuns]:
    """Split a batch by key, then the keys by group (untimed steps: order across keys is free).

    Grouping by key first means the group hash runs once per distinct key of the batch, not
    once per event, and the processor rebinds ``ctx.key`` once per run of a key. Keys must be
    hashable (the route has dropped those that are not).
    """
    by_key: dict[Any, list[Any]] = {}
    get = by_key.get
    for k, e in zip(keys, events, strict=True):
        evs = get(k)
        if evs is None:
            by_key[k] = [e]
        else:
            evs.append(e)
    groups: dict[str, KeyRuns] = {}
    cached, get_group = group.cached, groups.get
    for k, evs in by_key.items():
        g = cached(k) or group(k)
        entry = get_group(g)
        if entry is None:
            groups[g] = [(k, evs)]
        else:
            entry.append((k, evs))
    return groups


def _by_group_in_order(
    keys: list[Any], events: list[Any], group: GroupOf
) -> dict[str, KeyRuns]:
    """Split a batch by group keeping arrival order (event-time steps: the watermark advances
    per event); consecutive events of one key share a run and one key object."""
    canon: dict[Any, tuple[Any, str]] = {}
    groups: dict[str, KeyRuns] = {}
    for k, e in zip(keys, events, strict=True):
        found = canon.get(k)
        if found is None:
            found = canon[k] = (k, group.cached(k) or group(k))
        key, g = found
        runs = groups.get(g)
        if runs is None:
            groups[g] = [(key, [e])]
        elif runs[-1][0] is key:
            runs[-1][1].append(e)
        else:
            runs.append((key, [e]))
    return groups


def _route_timed(
    keys: list[Any],
    events: list[Any],
    group: GroupOf,
    micros: Micros,
    step: str,
    fail: bool,
    failed: list[DeadLetter],
) -> tuple[dict[str, Any], list[DeadLetter]]:
    try:
        times = micros.all(events)
    except Exception:
        keys, events, times = _times_one_by_one(keys, events, micros, step, fail, failed)
    # Non-decreasing times (the common, in-order case): no event can be late against an
    # earlier event of its own batch, so arrival order across keys no longer matters.
    by_key = all(map(le, times, islice(times, 1, None)))
    split = _timed_by_key if by_key else _timed_in_order
    try:
        return split(keys, events, times, group), failed
    except TypeError:
        kept = _hashable_rows(keys, events, step, fail, failed)
        if kept is None:
            raise
        return split(
            [keys[i] for i in kept], [events[i] for i in kept], [times[i] for i in kept], group
        ), failed


def _times_one_by_one(
    keys: list[Any],
    events: list[Any],
    micros: Micros,
    step: str,
    fail: bool,
    failed: list[DeadLetter],
) -> tuple[list[Any], list[Any], list[int]]:
    """Keys, events and times of the events whose time is usable; the others dead-letter."""
    ok_keys: list[Any] = []
    ok_events: list[Any] = []
    times: list[int] = []
    for k, e in zip(keys, events, strict=True):
        try:
            t = micros.one(e)
        except Exception as exc:
            if fail:
                raise
            failed.append(DeadLetter.from_error(step, exc, e))
            continue
        ok_keys.append(k)
        ok_events.append(e)
        times.append(t)
    return ok_keys, ok_events, times


def _timed_by_key(
    keys: list[Any], events: list[Any], times: list[int], group: GroupOf
) -> dict[str, TimedRuns]:
    by_key: dict[Any, tuple[list[Any], list[int]]] = {}
    get = by_key.get
    for k, e, t in zip(keys, events, times, strict=True):
        run = get(k)
        if run is None:
            by_key[k] = ([e], [t])
        else:
            run[0].append(e)
            run[1].append(t)
    groups: dict[str, TimedRuns] = {}
    cached, get_group = group.cached, groups.get
    for k, (evs, ts) in by_key.items():
        g = cached(k) or group(k)
        entry = get_group(g)
        if entry is None:
            groups[g] = TimedRuns([(k, evs, ts)], by_key=True)
        else:
            entry.runs.append((k, evs, ts))
    return groups


def _timed_in_order(
    keys: list[Any], events: list[Any], times: list[int], group: GroupOf
) -> dict[str, TimedRuns]:
    canon: dict[Any, tuple[Any, str]] = {}
    groups: dict[str, TimedRuns] = {}
    for k, e, t in zip(keys, events, times, strict=True):
        found = canon.get(k)
        if found is None:
            found = canon[k] = (k, group.cached(k) or group(k))
        key, g = found
        entry = groups.get(g)
        if entry is None:
            groups[g] = TimedRuns([(key, [e], [t])], by_key=False)
            continue
        runs = entry.runs
        if runs[-1][0] is key:
            runs[-1][1].append(e)
            runs[-1][2].append(t)
        else:
            runs.append((key, [e], [t]))
    return groups


def _unhashable_key(key: object) -> str | None:
    try:
        hash(key)
    except TypeError:
        return (
            f"key {key!r} is not hashable: key_by must return hashable keys "
            "(a tuple instead of a list, a frozen dataclass)"
        )
    return None
