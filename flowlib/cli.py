"""The ``flowlib`` command: ``flowlib run SCRIPT[:VARIABLE] [options] [-- script args]``."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from flowlib._script import load_flow
from flowlib.engine import RunReport, run
from flowlib.engine._compile import counted_steps
from flowlib.engine._counters import Counters
from flowlib.engine._run import prepare_run
from flowlib.errors import FlowlibError
from flowlib.flow import Flow
from flowlib.observe import (
    Observers,
    ProcessesProgress,
    configure,
    format_for,
    level_for,
    log_end,
    log_start,
)

__all__ = ["console_main", "main"]


def console_main() -> int:
    """The ``flowlib`` console script: :func:`main`, then an exit that skips the heap.

    After :func:`main` the run is over and its sinks are closed; the interpreter's last
    garbage collections would walk every object left (modules, the flow): ~20 ms at each exit,
    freeing nothing the operating system does not take back anyway. Frozen objects are
    skipped. Exit handlers (``atexit``) still run, and reference counting still frees objects;
    only objects kept alive by reference cycles are not finalized at exit (CPython does not
    promise that they are).
    """
    status = main()
    gc.freeze()
    return status


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowlib", description="Typed streaming dataflows.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run",
        help="run a flow defined in a Python script",
        description="Run the Flow held by VARIABLE (default: flow) of SCRIPT. Arguments after "
        "the script are passed to it in sys.argv.",
    )
    r.add_argument("target", metavar="SCRIPT[:VARIABLE]")
    r.add_argument("-w", "--workers", type=int, default=1, help="worker threads per process")
    r.add_argument("-p", "--processes", type=int, default=1, help="local processes to spawn")
    r.add_argument("-a", "--addresses", help="host:port of every process, ';'-separated")
    r.add_argument("-i", "--process-id", type=int, help="index of this process in -a")
    r.add_argument("--recovery", type=Path, help="recovery directory (created when missing)")
    r.add_argument(
        "--snapshot-interval", type=float, default=10.0, metavar="SECONDS",
        help="seconds between checkpoints (default 10)",
    )
    r.add_argument(
        "--incremental-checkpoints", action="store_true",
        help="large key groups write only what changed each checkpoint (see docs/checkpoints.md)",
    )
    r.add_argument(
        "--incremental-min-keys", type=int, default=1000, metavar="N",
        help="with --incremental-checkpoints: key groups of fewer keys write full snapshots "
        "(default 1000)",
    )
    r.add_argument("--report-file", type=Path, help=argparse.SUPPRESS)
    r.add_argument("--prepared", action="store_true", help=argparse.SUPPRESS)
    r.add_argument("-q", "--quiet", action="store_true", help="no summary table, no progress")
    r.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log at INFO (-vv: DEBUG); default: $FLOWLIB_LOG_LEVEL, else WARNING",
    )
    r.add_argument(
        "--log-format", metavar="text|json",
        help="logs as text lines or JSON objects (default: $FLOWLIB_LOG_FORMAT, else text)",
    )
    r.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST",
        help="address the metrics server binds (default 127.0.0.1; 0.0.0.0 for every interface, "
        "e.g. in a pod scraped by Prometheus)",
    )
    r.add_argument(
        "--metrics-port", type=int, metavar="PORT",
        help="serve Prometheus metrics on PORT of --metrics-host (with -p, process i uses "
        "PORT+i)",
    )
    b = sub.add_parser(
        "dev-broker",
        help="run a local Kafka broker for trials and tests",
        description="Run librdkafka's mock Kafka cluster in memory, print its bootstrap address "
        "and serve until Ctrl-C. Topics are created on first use (4 partitions).",
    )
    b.add_argument("--brokers", type=int, default=1, help="number of brokers (default 1)")
    sub.add_parser(  # parsed by flowlib._checkpoint_cli; listed here for --help
        "checkpoint", add_help=False,
        help="inspect, check or migrate a recovery directory: ls DIR | show DIR STEP | "
        "export DIR STEP OUT | check DIR SCRIPT | migrate DIR --rename OLD=NEW",
    )
    return p


def _dev_broker(args: argparse.Namespace, extra: list[str]) -> int:
    """``flowlib dev-broker``: print the address on stdout, serve until interrupted."""
    from flowlib.testing.kafka_broker import serve

    if extra or args.brokers < 1:
        print("flowlib: error: usage: flowlib dev-broker [--brokers N]", file=sys.stderr)
        return 2
    serve(args.brokers, until_stdin_closes=False, out=sys.stdout, hint=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowlib`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["checkpoint"]:
        from flowlib._checkpoint_cli import main as checkpoint_main

        return checkpoint_main(argv[1:])
    # Everything after "--", and any argument flowlib does not know, goes to the script.
    head, tail = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (
        argv, [])
    args, unknown = _parser().parse_known_args(head)
    script_args = [*unknown, *tail]
    if args.command == "dev-broker":
        return _dev_broker(args, script_args)
    try:
        args.log_format = format_for(args.log_format)
    except ValueError as exc:
        print(f"flowlib: error: {exc}", file=sys.stderr)
        return 2
    configure(level_for(args.verbose), args.log_format)
    try:
        if args.processes < 1 or args.workers < 1:
            _fail("-p and -w must be at least 1")
        if (args.addresses is None) != (args.process_id is None):
            _fail("-a and -i go together: give both or neither")
        if args.processes > 1 and args.addresses is not None:
            _fail("use either -p (local processes) or -a/-i (one process of a cluster)")
        if args.processes > 1:
            report = _spawn_local(args, script_args)
        else:
            flow = load_flow(args.target, script_args)
            addresses = args.addresses.split(";") if args.addresses else None
            # Processes launched by -p report to a file: their parent shows the progress.
            progress = not args.quiet and args.report_file is None
            # A process of `-p N` keeps its counts current for its launcher's progress.
            live = (None if args.report_file is None or args.quiet
                    else _live_file(args.report_file))
            report = _run_here(flow, args, addresses, args.process_id, args.metrics_port,
                               prepared=args.prepared, progress=progress, live_file=live)
    except (KeyboardInterrupt, Exception) as exc:  # usage, flowlib and the user's own errors
        return _exit_status(exc)
    log_end(report)
    if args.report_file is not None:
        args.report_file.write_text(json.dumps(report.to_json()))
    elif not args.quiet and args.log_format == "text":  # JSON logs: the run_end record has it
        print(report.table(), file=sys.stderr)
        print(report.summary(), file=sys.stderr)
    return 0


def _run_here(
    flow: Flow,
    args: argparse.Namespace,
    addresses: list[str] | None,
    process_id: int | None,
    metrics_port: int | None,
    *,
    prepared: bool,
    progress: bool,
    live_file: Path | None = None,
) -> RunReport:
    """Run ``flow`` in this process (alone, or as ``process_id`` of the cluster at
    ``addresses``) with the observers the options ask for; ``live_file`` receives its counts
    while it runs (for the launcher's progress)."""
    log_start(flow.name, args.workers, len(addresses or [None]), args.recovery, process_id)
    with Observers(metrics_port=metrics_port, metrics_host=args.metrics_host,
                   progress=progress, tty=_terminal(args),
                   live_file=live_file) as observers:
        return run(
            flow,
            workers_per_process=args.workers,
            process_id=process_id,
            addresses=addresses,
            recovery_dir=args.recovery,
            snapshot_interval=timedelta(seconds=args.snapshot_interval),
            incremental_checkpoints=args.incremental_checkpoints,
            incremental_min_keys=args.incremental_min_keys,
            prepared=prepared,
            on_start=observers.start,
        )


def _exit_status(exc: BaseException) -> int:
    """Show ``exc`` as the command reports it and return the exit status it means."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, (_UsageError, FlowlibError)):
        print(f"flowlib: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, _UsageError) else 1
    traceback.print_exception(exc)  # the user's own error, shown as theirs
    return 1


class _UsageError(Exception):
    pass


def _fail(msg: str) -> None:
    raise _UsageError(msg)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _spawn_local(args: argparse.Namespace, script_args: list[str]) -> RunReport:
    """Run ``args.processes`` processes of one cluster on loopback; merge their reports."""
    import tempfile  # only -p N needs it: a run in one process does not pay for its import

    flow = load_flow(args.target, script_args)  # fail here, once, on a bad script or variable
    prepare_run(flow, args.recovery, args.processes * args.workers)
    log_start(flow.name, args.workers, args.processes, args.recovery, None)
    addresses = [f"127.0.0.1:{p}" for p in _free_ports(args.processes)]
    started = time.perf_counter()
    forking = _can_fork()
    with tempfile.TemporaryDirectory(prefix="flowlib-run-") as tmp:
        procs: list[_Child] = []
        progress = None
        if not args.quiet:  # the processes' counts, summed from the files they keep current
            progress = ProcessesProgress(
                Counters(flow.name, counted_steps(flow)),
                [_live_file(Path(tmp) / f"{i}.json") for i in range(args.processes)],
                sys.stderr, tty=_terminal(args))
        try:
            for i in range(args.processes):
                report_file = Path(tmp) / f"{i}.json"
                if forking:
                    procs.append(_fork(flow, args, addresses, i, report_file))
                else:
                    procs.append(_spawn(args, script_args, addresses, i, report_file))
            if progress is not None:
                progress.start()
            failed = _wait_all(procs)
        except BaseException:
            _stop(procs)
            raise
        finally:
            if progress is not None and progress.started:
                progress.stop()
        if failed:
            msg = f"process {failed[0]} of {args.processes} failed (exit {failed[1]})"
            raise FlowlibError(msg)
        reports = [RunReport.from_json(json.loads((Path(tmp) / f"{i}.json").read_text()))
                   for i in range(args.processes)]
    merged = reports[0]
    for r in reports[1:]:
        merged = merged.merged(r)
    merged.wall_seconds = time.perf_counter() - started
    return merged


class _Child(Protocol):
    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def wait(self) -> int: ...


def _can_fork() -> bool:
    """Whether the launcher may fork its processes instead of starting fresh interpreters.

    A forked process starts with everything the launcher imported and the flow it loaded (no
    second start-up: about 0.3 s of CPU per process). Forking is safe only while this process
    runs a single thread (a thread holding a lock at the fork would leave it locked forever in
    the child), which ``/proc/self/task`` tells, native threads included (e.g. a client library
    the script started). ``FLOWLIB_START_METHOD=spawn`` forces fresh interpreters.
    """
    if os.environ.get("FLOWLIB_START_METHOD", "fork") == "spawn" or not hasattr(os, "fork"):
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # not Linux: no reliable way to count native threads
        return False


class _Forked:
    """A forked process, with the part of :class:`subprocess.Popen`'s interface used here."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def terminate(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGTERM)

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode


def _fork(
    flow: Flow, args: argparse.Namespace, addresses: list[str], i: int, report_file: Path
) -> _Forked:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return _Forked(pid)
    # The child: never return into the launcher's frames (its `with` blocks would clean up
    # the launcher's temporary directory), and leave through os._exit, not atexit handlers.
    status = 1
    try:
        metrics_port = None if args.metrics_port is None else args.metrics_port + i
        report = _run_here(flow, args, addresses, i, metrics_port, prepared=True,
                           progress=False,
                           live_file=None if args.quiet else _live_file(report_file))
        log_end(report)
        report_file.write_text(json.dumps(report.to_json()))
        status = 0
    except BaseException as exc:
        status = _exit_status(exc)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _spawn(
    args: argparse.Namespace, script_args: list[str], addresses: list[str], i: int,
    report_file: Path,
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "flowlib.cli", "run", args.target,
        "-w", str(args.workers), "-a", ";".join(addresses), "-i", str(i),
        "--snapshot-interval", str(args.snapshot_interval),
        "--report-file", str(report_file), "--prepared",
    ]
    if args.recovery is not None:
        cmd += ["--recovery", str(args.recovery)]
    if args.incremental_checkpoints:
        cmd += ["--incremental-checkpoints",
                "--incremental-min-keys", str(args.incremental_min_keys)]
    if args.metrics_port is not None:
        cmd += ["--metrics-port", str(args.metrics_port + i),
                "--metrics-host", args.metrics_host]
    cmd += ["-v"] * args.verbose + ["-q"] * args.quiet + ["--log-format", args.log_format]
    cmd += ["--", *script_args]
    return subprocess.Popen(cmd, env=os.environ.copy())


def _terminal(args: argparse.Namespace) -> bool:
    """Whether progress is drawn for a person (a terminal, text logs) rather than logged."""
    return sys.stderr.isatty() and args.log_format == "text"


def _live_file(report_file: Path) -> Path:
    """Where the process reporting to ``report_file`` keeps its counts while it runs."""
    return report_file.with_suffix(".live.json")


def _stop(procs: list[_Child]) -> None:
    for q in procs:
        if q.poll() is None:
            q.terminate()
    for q in procs:
        q.wait()


def _wait_all(procs: list[_Child]) -> tuple[int, int] | None:
    """Wait for every process; on the first failure stop the others and name it."""
    while True:
        running = False
        for i, p in enumerate(procs):
            code = p.poll()
            if code is None:
                running = True
            elif code != 0:
                _stop(procs)
                return (i, code)
        if not running:
            return None
        time.sleep(0.002)  # a short run ends sooner; 500 polls a second cost nothing


if __name__ == "__main__":
    sys.exit(console_main())
