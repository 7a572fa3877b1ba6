"""Running a flow on bytewax, in this process."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bytewax._bytewax import cli_main
from bytewax.recovery import RecoveryConfig

from flowlib.engine._compile import compile_flow, default_dead_letter_sink
from flowlib.engine._counters import Counters, RunReport
from flowlib.flow import Flow
from flowlib.observe._fields import fields

if TYPE_CHECKING:
    from flowlib.engine._incremental import Checkpoints

__all__ = ["PEER_WAIT_SECONDS", "prepare_run", "run", "user_error"]

# How long a process waits for its lower-index peers on this machine to listen before leaving
# the connection to timely's own retry (a peer slower than this is likely gone or stuck).
PEER_WAIT_SECONDS = 60.0

log = logging.getLogger("flowlib")


def run(
    flow: Flow,
    *,
    workers_per_process: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    recovery_dir: str | os.PathLike[str] | None = None,
    snapshot_interval: timedelta = timedelta(seconds=10),
    incremental_checkpoints: bool = False,
    incremental_min_keys: int = 1000,
    prepared: bool = False,
    on_start: Callable[[Counters], None] | None = None,
) -> RunReport:
    """Run ``flow`` to the end of its inputs and report per-step counts.

    With ``recovery_dir`` state is checkpointed every ``snapshot_interval`` and a later run with
    the same directory resumes from the last checkpoint. ``process_id`` and ``addresses`` make
    this process one of a cluster (``addresses`` lists ``host:port`` of every process).

    ``incremental_checkpoints`` makes key groups of at least ``incremental_min_keys`` keys write
    only what changed at each checkpoint (see ``docs/checkpoints.md``).

    ``prepared`` says :func:`prepare_run` was already called for this run (by a launcher).
    ``on_start`` receives the live :class:`Counters` just before the dataflow starts (for
    observers that read them from other threads: metrics, progress).

    An exception raised by user code under ``on_error="fail"`` comes out as itself, with its own
    traceback, not wrapped in the engine's errors.
    """
    recovery = recovery_dir is not None
    checkpoints: Checkpoints | None = None
    if recovery_dir is not None:
        # Imported here: a run without checkpoints does not pay for sqlite3, secrets, ...
        from flowlib.engine._incremental import Checkpoints

        checkpoints = Checkpoints(
            Path(recovery_dir), flow.name, flow.max_key_groups,
            incremental=incremental_checkpoints, inline_rows=incremental_min_keys)
    processes = max(1, len(addresses or ()))
    compiled = compile_flow(flow, recovery=recovery, checkpoints=checkpoints,
                            processes=processes, workers=processes * workers_per_process)
    if process_id in (None, 0) and not prepared:
        # Other processes wait for this one to connect before any event runs.
        total = workers_per_process * max(1, len(addresses or ()))
        prepare_run(flow, recovery_dir, total)
    config = RecoveryConfig(Path(recovery_dir)) if recovery_dir is not None else None
    os.environ.setdefault("RUST_BACKTRACE", "0")  # the user's traceback is the useful one
    # Snapshots closer together than this are one checkpoint (epochs are an interval apart).
    compiled.counters.checkpoints.gap = min(0.5, snapshot_interval.total_seconds() / 2)
    if on_start is not None:
        on_start(compiled.counters)
    # Events rarely form reference cycles, yet allocating millions of them triggers young-
    # generation collections that rescan everything built so far (the flow, modules): freeze
    # that, and collect the young generation less often. Measured: about 5% of a run.
    # Only the young generations are collected first: a full collection walks the whole heap
    # (6 ms at the start of a run; 25 ms in a process forked by `flowlib run -p N`, which it
    # makes copy every page it touches) to free a few hundred bytes, and whatever garbage the
    # freeze keeps is collectable again once the run unfreezes it.
    threshold = gc.get_threshold()
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    try:
        if addresses and process_id:
            # timely connects to every lower-index process and, when one is not listening
            # yet, sleeps a whole second before retrying: wait for their ports to be bound
            # instead (after the preparation above, which thus overlaps theirs).
            from flowlib.engine._peers import wait_for_listeners  # only these processes wait

            late = wait_for_listeners(addresses[:process_id], timeout=PEER_WAIT_SECONDS)
            if late:
                log.info("processes at %s not listening after %.0f s; connecting anyway",
                         ", ".join(late), PEER_WAIT_SECONDS,
                         extra=fields("peers_late", addresses=late))
        started = time.perf_counter()
        try:
            cli_main(
                compiled.dataflow,
                workers_per_process=workers_per_process,
                process_id=process_id,
                addresses=addresses,
                epoch_interval=snapshot_interval,
                recovery_config=config,
            )
        except Exception as exc:
            raise user_error(exc) from None
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
    return compiled.counters.report(time.perf_counter() - started)


def prepare_run(
    flow: Flow, recovery_dir: str | os.PathLike[str] | None, partitions: int
) -> None:
    """Once per run, before any process starts: initialise or check the recovery directory and,
    unless resuming, let the sinks start empty."""
    if recovery_dir is None:
        _prepare_sinks(flow)
        return
    # Imported here: schema checks need pyarrow, which runs without recovery never load.
    from flowlib.engine._recovery import prepare_recovery_dir, recovery_dir_is_new

    # Sinks first, then the directory: a run killed in between finds no initialised directory
    # and starts fresh again, sinks included. (The other way round, the next run would resume
    # with sinks that were never prepared.)
    if recovery_dir_is_new(Path(recovery_dir)):
        _prepare_sinks(flow)
    prepare_recovery_dir(flow, Path(recovery_dir), partitions)


def _prepare_sinks(flow: Flow) -> None:
    for s in flow.sinks:
        s.sink.prepare()
    default_dead_letter_sink(flow).prepare()


def user_error(exc: BaseException) -> BaseException:
    """The innermost exception of an engine error chain: the one user code raised."""
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return inner
