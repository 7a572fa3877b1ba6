"""Worker threads keep their Python thread state for the whole run (see engine/_threads)."""

from __future__ import annotations

import threading

from flowlib import DeadLetter, Flow, ListSink, ListSource
from flowlib.engine import run
from flowlib.engine._threads import keep_thread_state

_seen = threading.local()


def count_calls_on_this_thread(x: int) -> tuple[str, int]:
    # A thread-local value lives in the thread state: it survives from one batch to the next
    # only if that state is not destroyed when bytewax leaves Python between batches.
    _seen.calls = getattr(_seen, "calls", 0) + 1
    return (threading.current_thread().name, _seen.calls)


def test_a_worker_thread_keeps_its_state_across_batches() -> None:
    flow = Flow("threads", dead_letters=ListSink(DeadLetter))  # none written to the cwd
    out: ListSink[tuple[str, int]] = ListSink()
    nums = flow.source(ListSource(range(20), int, batch_size=1), name="nums")
    nums.map(count_calls_on_this_thread, name="count").sink(out)
    # Two workers in one process: bytewax runs them on threads timely started, not Python.
    run(flow, workers_per_process=2)
    assert len(out.items) == 20
    threads = {name for name, _ in out.items}
    assert threading.current_thread().name not in threads  # really on worker threads
    # One batch per event: with a fresh thread state per batch every count would be 1.
    assert max(calls for _, calls in out.items) == 20


def test_keeping_is_idempotent_and_harmless_on_a_python_thread() -> None:
    kept: list[object] = []

    def body() -> None:
        keep_thread_state()
        keep_thread_state()
        kept.append(threading.current_thread().name)

    t = threading.Thread(target=body, name="plain")
    t.start()
    t.join(timeout=10)
    assert kept == ["plain"]
    assert not t.is_alive()
