"""The disk backend in real flows: chosen per step, same output as memory, through a crash."""

from __future__ import annotations

from dataclasses import dataclass

from flowlib import Flow, ListSink
from flowlib.state import StateBackendFactory
from flowlib.testing import TestSource, run_flow
from operators.aggregate import Count, Fold, Keyed
from state_backends import DiskBackend, MemoryBackend


@dataclass(frozen=True)
class Hit:
    user: str
    page: str
    ms: int


@dataclass
class Totals:
    hits: int
    ms: int
    pages: set[str]


def add(acc: Totals, hit: Hit) -> Totals:
    acc.hits += 1
    acc.ms += hit.ms
    acc.pages.add(hit.page)
    return acc  # Fold stores it with set(): the in-place change persists


HITS = [Hit(f"user{i % 700}", f"/p{i % 13}", i % 97) for i in range(4000)]


def build(
    per_user: StateBackendFactory[str, Totals], per_page: StateBackendFactory[str, int]
) -> tuple[Flow, TestSource[Hit], ListSink[Keyed[str, Totals]], ListSink[Keyed[str, int]]]:
    flow = Flow("hits", max_key_groups=8)
    source = TestSource(Hit)
    users, pages = ListSink(Keyed[str, Totals]), ListSink(Keyed[str, int])
    hits = flow.source(source, name="hits")
    hits.key_by(lambda h: h.user, key_type=str).process(
        Fold(lambda: Totals(0, 0, set()), add, state_type=Totals), name="per_user",
        state=per_user,
    ).sink(users)
    hits.key_by(lambda h: h.page, key_type=str).process(
        Count(), name="per_page", state=per_page
    ).sink(pages)
    return flow, source, users, pages


def outputs(
    per_user: StateBackendFactory[str, Totals], per_page: StateBackendFactory[str, int],
    crash_after: int | None = None,
) -> tuple[dict[str, Totals], dict[str, int]]:
    flow, source, users, pages = build(per_user, per_page)
    result = run_flow(flow, {source: HITS}, batch_size=100, crash_after=crash_after)
    assert result.dead_letters == []
    assert result.crashed == (crash_after is not None)
    by_user = {k.key: k.value for k in result.outputs(users)}
    by_page = {k.key: k.value for k in result.outputs(pages)}
    assert len(by_user) == 700 and len(result.outputs(users)) == 700  # each key once
    return by_user, by_page


def test_disk_state_per_step_gives_the_memory_output() -> None:
    expected = outputs(MemoryBackend, MemoryBackend)
    small = DiskBackend.at(cache_entries=16)  # 700 users in 8 groups: most reads miss the cache
    assert outputs(small, MemoryBackend) == expected
    assert outputs(small, small) == expected


def test_disk_state_resumes_from_a_crash_with_the_memory_output() -> None:
    expected = outputs(MemoryBackend, MemoryBackend)
    small = DiskBackend.at(cache_entries=16)
    assert outputs(small, DiskBackend, crash_after=2500) == expected
