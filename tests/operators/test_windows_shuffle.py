"""Property: reordering events within the allowed out-of-orderness never changes window results.

Runs the real window operator in the engine's key-group runtime (``KeyGroup``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib.engine._group import KeyGroup, KeyGroupSpec
from flowlib.time import EPOCH, EventTime
from operators.aggregations import Count, Max, Multi, Sum
from operators.windows import SlidingWindows, TumblingWindows, WindowResult
from state_backends import MemoryBackend

DELAY = 30  # seconds of allowed out-of-orderness


@dataclass(frozen=True)
class Reading:
    key: str
    t: float
    value: float


def value(r: Reading) -> float:
    return r.value


def final_results(events: list[Reading], sliding: bool) -> dict[tuple[str, Any], Any]:
    agg = Multi(Count(), Sum(value), Max(value))
    op: Any = (
        SlidingWindows(timedelta(seconds=60), timedelta(seconds=20), agg)
        if sliding else TumblingWindows(timedelta(seconds=60), agg)
    )
    et: EventTime[Reading] = EventTime.of(
        lambda r: EPOCH + timedelta(seconds=r.t), max_out_of_orderness=timedelta(seconds=DELAY)
    )
    spec = KeyGroupSpec("w", op, str, op.state_type, MemoryBackend, et, late_wired=True,
                        fail=True, recovery=True)
    group = KeyGroup(spec, None)
    out: list[WindowResult[str, Any]] = []
    for e in events:  # one event per batch: the most watermark advances possible
        res = group.process([[(e.key, [e])]])
        assert res.late == [] and res.dead == []
        out += res.out
    out += group.end_of_input().out
    latest: dict[tuple[str, Any], Any] = {}
    for r in out:  # the last result of a window (later updates replace earlier ones)
        latest[(r.key, r.start)] = r.value
    return latest


readings = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 600), st.integers(-50, 50)),
    min_size=1, max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(raw=readings, jitter=st.lists(st.integers(0, DELAY), min_size=60, max_size=60),
       sliding=st.booleans())
def test_shuffle_within_out_of_orderness_gives_the_same_windows(
    raw: list[tuple[str, int, int]], jitter: list[int], sliding: bool
) -> None:
    ordered = sorted((Reading(k, float(t), float(v)) for k, t, v in raw), key=lambda r: r.t)
    # Arrival order: by time plus a delay of at most DELAY, so no event arrives after one
    # more than DELAY newer than it.
    shuffled = [r for _, _, r in sorted(
        (r.t + jitter[i], i, r) for i, r in enumerate(ordered)
    )]
    assert final_results(shuffled, sliding) == final_results(ordered, sliding)
