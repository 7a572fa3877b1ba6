"""The slot keys' workers, checked against the installed bytewax's own routing."""

from __future__ import annotations

import threading

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, cluster_main

from flowlib.engine._slots import slot_keys, worker_of


def bytewax_partition(keys: list[str], workers: int) -> list[set[str]]:
    """The keys each worker thread received in a bytewax stateful step, as sets."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def note(state: None, key: str) -> tuple[None, None]:
        with lock:
            seen[key] = threading.get_ident()
        return state, None

    flow = Dataflow("slots")
    items = op.input("in", flow, TestingSource([(k, k) for k in keys]))
    op.inspect("out", op.stateful_map("note", items, note), lambda *_: None)
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    by_thread: dict[int, set[str]] = {}
    for key, thread in seen.items():
        by_thread.setdefault(thread, set()).add(key)
    return sorted(by_thread.values(), key=sorted)


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_worker_of_predicts_bytewax_routing(workers: int) -> None:
    keys = [f"k{i}" for i in range(60)] + slot_keys(workers)
    predicted: dict[int, set[str]] = {}
    for k in keys:
        predicted.setdefault(worker_of(k, workers), set()).add(k)
    assert bytewax_partition(keys, workers) == sorted(predicted.values(), key=sorted)


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_bytewax_sends_each_slot_key_to_a_worker_of_its_own(workers: int) -> None:
    keys = slot_keys(workers)
    assert bytewax_partition(keys, workers) == sorted(({k} for k in keys), key=sorted)
