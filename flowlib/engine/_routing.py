"""Routing a batch to key groups: keys (failures become dead letters), then runs per group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowlib.dead_letter import DeadLetter
from flowlib.engine._group import KeyRuns
from flowlib.engine._keygroups import GroupOf
from flowlib.errors import FlowlibError

__all__ = ["route_batch"]


def route_batch(
    batch: list[Any],
    key_fn: Callable[[Any], Any],
    group: GroupOf,
    *,
    step: str,
    fail: bool,
    ordered: bool,
) -> tuple[dict[str, KeyRuns], list[DeadLetter]]:
    """The runs of each key group of ``batch``, and dead letters for keys that failed.

    ``ordered`` (event-time steps, whose watermark advances per event) keeps arrival order
    within each group; otherwise events are grouped by key, which is cheaper.
    """
    failed: list[DeadLetter] = []
    try:
        keys = [key_fn(e) for e in batch]
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
    split = _by_group_in_order if ordered else _by_group
    try:
        return split(keys, ok, group), failed
    except TypeError:
        bad = [(e, msg) for k, e in zip(keys, ok, strict=True)
               if (msg := _unhashable_key(k)) is not None]
        if not bad:
            raise
        if fail:
            raise FlowlibError(f"step {step!r}: {bad[0][1]}") from None
        failed += [DeadLetter.from_error(f"{step}.key_by", FlowlibError(m), e) for e, m in bad]
        pairs = [(k, e) for k, e in zip(keys, ok, strict=True) if _unhashable_key(k) is None]
        return split([k for k, _ in pairs], [e for _, e in pairs], group), failed


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


def _unhashable_key(key: object) -> str | None:
    try:
        hash(key)
    except TypeError:
        return (
            f"key {key!r} is not hashable: key_by must return hashable keys "
            "(a tuple instead of a list, a frozen dataclass)"
        )
    return None
