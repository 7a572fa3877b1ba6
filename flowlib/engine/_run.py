"""Running a flow on bytewax, in this process."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from bytewax._bytewax import cli_main
from bytewax.recovery import RecoveryConfig

from flowlib.engine._compile import compile_flow
from flowlib.engine._counters import RunReport
from flowlib.engine._recovery import prepare_recovery_dir
from flowlib.flow import Flow

__all__ = ["run"]


def run(
    flow: Flow,
    *,
    workers_per_process: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    recovery_dir: str | os.PathLike[str] | None = None,
    snapshot_interval: timedelta = timedelta(seconds=10),
) -> RunReport:
    """Run ``flow`` to the end of its inputs and report per-step counts.

    With ``recovery_dir`` state is checkpointed every ``snapshot_interval`` and a later run with
    the same directory resumes from the last checkpoint. ``process_id`` and ``addresses`` make
    this process one of a cluster (``addresses`` lists ``host:port`` of every process).

    An exception raised by user code under ``on_error="fail"`` comes out as itself, with its own
    traceback, not wrapped in the engine's errors.
    """
    recovery = recovery_dir is not None
    compiled = compile_flow(flow, recovery=recovery)
    config = None
    if recovery_dir is not None:
        path = Path(recovery_dir)
        if process_id in (None, 0):
            total = workers_per_process * max(1, len(addresses or ()))
            prepare_recovery_dir(flow, path, total)
        config = RecoveryConfig(path)
    os.environ.setdefault("RUST_BACKTRACE", "0")  # the user's traceback is the useful one
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
    return compiled.counters.report(time.perf_counter() - started)


def user_error(exc: BaseException) -> BaseException:
    """The innermost exception of an engine error chain: the one user code raised."""
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return inner
