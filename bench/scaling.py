#!/usr/bin/env python3
"""Scaling: ``flowlib run -p 2`` vs ``-p 1`` on one input file read in byte ranges.

    python bench/scaling.py [--events N] [--cpu-events N] [--rounds R]
                            [--only log_agg|cpu|log_agg_uncombined|log_agg_keyed]

Jobs (``bench/scaling_flow.py``): ``log_agg`` (the shared workload, 1,000,000 events; cheap per
event, so most of the work is decoding and the exchange between the processes, where only
per-key partial aggregates cross) and ``cpu`` (a CPU-heavy typed ``map`` per event, then a
small keyed sum; the first 300,000 events). For comparison, ``--only log_agg_uncombined`` (the
same operator sending every event across) or ``--only log_agg_keyed`` (a hand-written per-event
processor) run instead of ``log_agg``.
The file source is split into as many byte ranges as processes (``splits=P``).

Per round, ``-p 1`` and ``-p 2`` run alternately, each a fresh ``flowlib run`` (start-up,
imports, and for ``-p 2`` the launcher process, included). Also per round, both run once on
an empty file: their start-up, subtracted for the "without start-up" figure. Wall time is
``perf_counter`` around the command; CPU time is the user + system time of the command and all
its processes. Outputs are checked: log_agg with the shared ``check.py``, cpu ``-p 2`` against
``-p 1``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import (
    BENCH,
    ROOT,
    WORK,
    Target,
    child_env,
    median,
    now,
    python,
    ratio,
    warm,
    write_result,
)
from typed_vs_untyped import inputs, shared_dir

NAME = "scaling"
DEFAULT_EVENTS = 1_000_000
DEFAULT_CPU_EVENTS = 300_000
# The log_agg job without combining before the exchange: run only when asked (--only).
LOG_AGG_VARIANTS = ("log_agg_uncombined", "log_agg_keyed")


def timed(cmd: list[str]) -> tuple[float, float, int, str]:
    """Wall s, CPU s (the command and every process it waited for), exit code, stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                          env=child_env())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode, proc.stderr


def command(src: Path, out: Path, procs: int, job: str) -> list[str]:
    return [python(), "-m", "flowlib.cli", "run", str(BENCH / "scaling_flow.py"), "-p",
            str(procs), "-q", "--", str(src), str(out), "--splits", str(procs), "--job", job]


def head(src: Path, n: int) -> Path:
    """The first ``n`` lines of ``src``, as a file of their own (made once)."""
    dst = WORK / f"{src.stem}-head-{n}.jsonl"
    if not dst.exists():
        with src.open("rb") as f, dst.open("wb") as g:
            for _ in range(n):
                line = f.readline()
                if not line:
                    break
                g.write(line)
    return dst


def read_rows(path: Path, key: str) -> dict[str, dict[str, Any]]:
    with path.open() as f:
        return {r[key]: r for r in map(json.loads, f)}


def check_cpu(expected: Path, actual: Path) -> str | None:
    a, b = read_rows(expected, "service"), read_rows(actual, "service")
    if a.keys() != b.keys():
        return f"services differ: {sorted(a.keys() ^ b.keys())[:5]}"
    for k, r in a.items():
        if r["count"] != b[k]["count"] or not math.isclose(r["score"], b[k]["score"],
                                                           rel_tol=1e-9):
            return f"{k}: -p 1 gave {r}, -p 2 gave {b[k]}"
    return None


def check_log(ref: Path, out: Path) -> str | None:
    proc = subprocess.run([python(), str(shared_dir() / "check.py"), str(ref), str(out)],
                          capture_output=True, text=True, check=False)
    return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()[-300:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    p.add_argument("--cpu-events", type=int, default=DEFAULT_CPU_EVENTS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", choices=("log_agg", "cpu", *LOG_AGG_VARIANTS))
    args = p.parse_args(argv)
    src, ref = inputs("log", args.events)
    empty = WORK / "empty.jsonl"
    empty.write_bytes(b"")
    scratch = WORK / NAME
    scratch.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"date": now(), "events": args.events, "cpu_events": args.cpu_events,
                           "rounds": args.rounds, "jobs": {}}
    targets: list[Target] = []
    ok = True
    for job in ("log_agg", "cpu", *LOG_AGG_VARIANTS):
        if args.only != job and (args.only is not None or job in LOG_AGG_VARIANTS):
            continue
        log = job != "cpu"
        inp = src if log else head(src, args.cpu_events)
        n = args.events if log else args.cpu_events
        warm(inp)
        runs: list[dict[str, Any]] = []
        for rnd in range(1, args.rounds + 1):
            for procs in (1, 2):
                out = scratch / f"{job}-p{procs}.jsonl"
                wall, cpu, code, err = timed(command(inp, out, procs, job))
                e_wall, e_cpu, e_code, e_err = timed(
                    command(empty, scratch / "empty-out.jsonl", procs, job))
                if code != 0 or e_code != 0:
                    problem: str | None = f"exit {code}/{e_code}: {(err + e_err)[-300:]}"
                elif log:
                    problem = check_log(ref, out)
                else:
                    problem = None if procs == 1 else check_cpu(scratch / f"{job}-p1.jsonl", out)
                ok &= problem is None
                runs.append({"job": job, "round": rnd, "processes": procs, "wall": wall,
                             "cpu": cpu, "startup_wall": e_wall, "startup_cpu": e_cpu,
                             "correct": problem is None, "problem": problem})
                print(f"{job} round {rnd} -p {procs}: {wall:6.2f} s wall "
                      f"({n / wall / 1000:5.0f} K ev/s), CPU {cpu:6.2f} s; empty input "
                      f"{e_wall:5.2f} s  {'ok' if problem is None else 'INCORRECT: ' + problem}",
                      flush=True)

        def med(procs: int, what: str, runs: list[dict[str, Any]] = runs) -> float | None:
            return median([r[what] for r in runs if r["processes"] == procs and r["correct"]])

        w1, w2 = med(1, "wall"), med(2, "wall")
        s1, s2 = med(1, "startup_wall"), med(2, "startup_wall")
        c1, c2 = med(1, "cpu"), med(2, "cpu")
        steady = (None if None in (w1, w2, s1, s2) else ratio(w1 - s1, w2 - s2))  # type: ignore[operator]
        per_round = [ratio(a["wall"], b["wall"]) for a in runs for b in runs
                     if a["processes"] == 1 and b["processes"] == 2 and a["round"] == b["round"]
                     and a["correct"] and b["correct"]]
        doc["jobs"][job] = {"input": str(inp), "events": n, "runs": runs,
                            "medians": {"p1_wall": w1, "p2_wall": w2, "p1_cpu": c1,
                                        "p2_cpu": c2, "p1_startup": s1, "p2_startup": s2},
                            "speedup_per_round": per_round, "speedup_without_startup": steady,
                            "cpu_ratio_p2_over_p1": ratio(c2, c1)}
        # On a busy machine the wall times say little; the CPU both runs used bounds what two
        # free cores would give: at best 2 x CPU(-p 1) / CPU(-p 2).
        bound = None if c1 is None or c2 is None else 2 * c1 / c2
        doc["jobs"][job]["cpu_bound_speedup"] = bound
        targets.append(Target(
            f"scaling {job} -p 2 / -p 1", ratio(w1, w2), 1.7, "x",
            note=f"wall, start-up included; without start-up {_fmt(steady)}x; CPU -p 2 / -p 1 "
                 f"{_fmt(ratio(c2, c1))}, so at best {_fmt(bound)}x on two free cores"))
    full = (args.events == DEFAULT_EVENTS and args.cpu_events == DEFAULT_CPU_EVENTS
            and args.only is None)
    write_result(NAME, full, doc, targets)
    return 0 if ok else 1


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    sys.exit(main())
