#!/usr/bin/env python3
"""Run flowlib's benchmark suite: every benchmark, every target as ``measured / target``.

    python bench/run.py [--events N] [--rounds R] [--only NAME,...] [--skip NAME,...]
                        [--peers a,b] [--extras] [--no-chart]

Peer benchmarks (``log_agg``, ``keys``, ``windows``, ``sliding``): inputs and references are
generated once into ``bench/work/`` (kept between invocations). Then every round runs each peer
once, alternating (flowlib, bytewax, plain, flowlib, ...), each as a fresh OS process: start-up
and imports count, as in the shared WORKLOAD.md. Wall time is ``perf_counter`` around the child;
peak RSS and CPU time come from ``os.wait4``. Every output is checked against the reference; a
run whose output is wrong counts as incorrect and is left out of the medians.

Standalone benchmarks (``typed_vs_untyped``, ``decode``, ``scaling``, ``key_scaling``; with
``--extras`` also ``checkpoint_bench.py`` and ``state_scale.py`` when present) run as scripts
that check their own outputs and write their own results with their targets.

Results of full-size runs go to ``bench/results/<name>.json``, others to
``bench/work/results/``. At the end every target is printed as ``measured / target`` (met or
MISSED), and ``summary.json`` and the chart ``summary.png`` (measured relative to target; needs
matplotlib, ``pip install -e '.[bench]'``) are written beside the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import BENCH, RESULTS, ROOT, WORK, Target, child_env, shown
from _benchlib import machine as machine

DEFAULT_EVENTS = 1_000_000
DEFAULT_KEYS = 100_000
PEERS = ("flowlib", "bytewax", "plain")
OPTIONAL_PEERS = ("flowlib-keyed",)  # log_agg's hand-keyed script: only when asked for


def shared_dir() -> Path:
    """The read-only shared workload (``../shared/bench``), or ``$FLOWLIB_SHARED_BENCH``."""
    env = os.environ.get("FLOWLIB_SHARED_BENCH")
    return Path(env).resolve() if env else ROOT.parent / "shared" / "bench"


# --- what to run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One peer's run: where it reads and writes, and its scratch directory."""

    src: Path
    out: Path
    scratch: Path


@dataclass(frozen=True)
class Peer:
    """A way of doing a benchmark's job, as a command line."""

    name: str
    command: Callable[[Job], list[str]]
    cwd: Path
    prepare: Callable[[Job], None] | None = None
    """Untimed set-up before each run (e.g. initialising a recovery directory)."""


@dataclass(frozen=True)
class Benchmark:
    """A job, its inputs, its reference answer, its checker, and the peers that do it."""

    name: str
    description: str
    target: float
    """The flowlib / bytewax events/s ratio flowlib aims for."""
    make_input: Callable[[], Path]
    make_reference: Callable[[Path], Path]
    check: Callable[[Path, Path], tuple[bool, str]]
    peers: list[Peer]


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _generated(path: Path, script: Path, *args: str) -> Path:
    """``path``, written by ``script TMP ARGS`` unless it exists; renamed only when complete."""
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        print(f"generating {path.name} ...", flush=True)
        subprocess.run(_python(str(script), str(tmp), *args), check=True)
        tmp.replace(path)
    return path


def log_agg(events: int) -> Benchmark:
    """The shared log_agg workload: 10-second windows per (service, level)."""
    shared = shared_dir()

    def make_input() -> Path:
        return _generated(WORK / f"events-{events}.jsonl", shared / "gen_events.py", str(events))

    def make_reference(src: Path) -> Path:
        ref = WORK / f"log_agg-ref-{events}.jsonl"
        if not ref.exists():
            print(f"computing {ref.name} with ref.py ...", flush=True)
            tmp = ref.with_suffix(".tmp")
            subprocess.run(_python(str(shared / "ref.py"), str(src), str(tmp)), check=True)
            tmp.replace(ref)
        return ref

    def check(ref: Path, out: Path) -> tuple[bool, str]:
        proc = subprocess.run(
            _python(str(shared / "check.py"), str(ref), str(out)),
            capture_output=True, text=True, check=False,
        )
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def flowlib(job: Job) -> list[str]:
        # The workload as a flowlib user writes it: the event-time window operator (issue 4).
        return _python("-m", "flowlib.cli", "run", str(BENCH / "log_agg_windows_flowlib.py"),
                       "--", str(job.src), str(job.out))

    def flowlib_keyed(job: Job) -> list[str]:
        # The same job hand-written as a per-event Processor keyed by window start: what a
        # user's own per-event processor costs (no target).
        return _python("-m", "flowlib.cli", "run", str(BENCH / "log_agg_flowlib.py"),
                       "--", str(job.src), str(job.out))

    def bytewax(job: Job) -> list[str]:
        return _python("-m", "bytewax.run", f"peer_bytewax:get_flow({str(job.src)!r}, "
                       f"{str(job.out)!r})")

    return Benchmark(
        name="log_agg",
        description=f"{events:,} JSON events; count/sum/max per (service, level) and 10 s window",
        target=3.0,  # issue 7 (2x before); stretch: the plain loop's speed
        make_input=make_input,
        make_reference=make_reference,
        check=check,
        peers=[
            Peer("flowlib", flowlib, ROOT),
            Peer("flowlib-keyed", flowlib_keyed, ROOT),
            Peer("bytewax", bytewax, shared),
            Peer("plain", lambda j: _python(str(shared / "peer_plain_orjson.py"), str(j.src),
                                            str(j.out)), shared),
        ],
    )


def windows(events: int, sliding: bool) -> Benchmark:
    """The log_agg workload on event-time window operators, streaming (issue 4's benchmark).

    Tumbling: 10 s windows against the shared bytewax peer. Sliding: 1-minute windows every
    10 s against ``sliding_bytewax.py``, checked against ``sliding_ref.py``.
    """
    shared = shared_dir()
    base = log_agg(events)
    name = "sliding" if sliding else "windows"

    def make_reference(src: Path) -> Path:
        if not sliding:
            return base.make_reference(src)
        ref = WORK / f"sliding-ref-{events}.jsonl"
        if not ref.exists():
            print(f"computing {ref.name} with sliding_ref.py ...", flush=True)
            tmp = ref.with_suffix(".tmp")
            subprocess.run(_python(str(BENCH / "sliding_ref.py"), str(src), str(tmp)), check=True)
            tmp.replace(ref)
        return ref

    def flowlib(job: Job) -> list[str]:
        cmd = _python("-m", "flowlib.cli", "run", str(BENCH / "log_agg_windows_flowlib.py"),
                      "--", str(job.src), str(job.out))
        return [*cmd, "--sliding"] if sliding else cmd

    def bytewax(job: Job) -> list[str]:
        module = "sliding_bytewax" if sliding else "peer_bytewax"
        return _python("-m", "bytewax.run", f"{module}:get_flow({str(job.src)!r}, "
                       f"{str(job.out)!r})")

    what = "1-minute windows every 10 s" if sliding else "10 s tumbling windows"
    return Benchmark(
        name=name,
        description=f"{events:,} JSON events; count/sum/max per (service, level), {what}, "
        "event-time window operators emitting as the watermark passes",
        target=3.0,
        make_input=base.make_input,
        make_reference=make_reference,
        check=base.check,
        peers=[
            Peer("flowlib", flowlib, ROOT),
            Peer("bytewax", bytewax, BENCH if sliding else shared),
        ],
    )


def keys(events: int, n_keys: int) -> Benchmark:
    """Sum per key over ``n_keys`` keys with a checkpoint every second (flowlib and bytewax)."""

    def make_input() -> Path:
        return _generated(
            WORK / f"keys-{events}-{n_keys}.jsonl", BENCH / "gen_keys.py", str(events), str(n_keys)
        )

    def make_reference(src: Path) -> Path:
        ref = WORK / f"keys-ref-{events}-{n_keys}.jsonl"
        if not ref.exists():
            print(f"computing {ref.name} ...", flush=True)
            sums: dict[str, float] = {}
            with src.open() as f:
                for line in f:
                    e = json.loads(line)
                    sums[e["k"]] = sums.get(e["k"], 0.0) + e["v"]
            tmp = ref.with_suffix(".tmp")
            with tmp.open("w") as f:
                f.writelines(json.dumps({"k": k, "sum": s}) + "\n" for k, s in sums.items())
            tmp.replace(ref)
        return ref

    def recovery(job: Job) -> Path:
        return job.scratch / "recovery"

    def flowlib(job: Job) -> list[str]:
        return _python("-m", "flowlib.cli", "run", str(BENCH / "keys_flowlib.py"),
                       "--recovery", str(recovery(job)), "--snapshot-interval", "1",
                       "--", str(job.src), str(job.out))

    def bytewax(job: Job) -> list[str]:
        return _python("-m", "bytewax.run",
                       f"keys_bytewax:get_flow({str(job.src)!r}, {str(job.out)!r})",
                       "-r", str(recovery(job)), "-s", "1", "-b", "0")

    def init_bytewax_recovery(job: Job) -> None:
        rec = recovery(job)
        _remove_dir(rec)
        rec.mkdir(parents=True)
        subprocess.run(_python("-m", "bytewax.recovery", str(rec), "1"), check=True,
                       capture_output=True)

    return Benchmark(
        name="keys",
        description=f"{events:,} JSON events over {n_keys:,} keys; sum per key at end of input; "
        "flowlib and bytewax checkpoint every second (plain: no checkpoints)",
        target=5.0,
        make_input=make_input,
        make_reference=make_reference,
        check=check_keys,
        peers=[
            Peer("flowlib", flowlib, ROOT, lambda j: _remove_dir(recovery(j))),
            Peer("bytewax", bytewax, BENCH, init_bytewax_recovery),
            Peer("plain", lambda j: _python(str(BENCH / "keys_plain.py"), str(j.src),
                                            str(j.out)), BENCH),
        ],
    )


def check_keys(ref: Path, out: Path) -> tuple[bool, str]:
    """Same keys as ``ref``, each sum within relative tolerance 1e-9, no key twice."""

    def load(path: Path) -> dict[str, float]:
        rows: dict[str, float] = {}
        with path.open() as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                if r["k"] in rows:
                    raise ValueError(f"{path}:{n}: duplicate key {r['k']!r}")
                rows[r["k"]] = float(r["sum"])
        return rows

    try:
        exp, act = load(ref), load(out)
    except (OSError, ValueError, KeyError) as exc:
        return False, f"MISMATCH: {exc}"
    errs = [f"missing {k!r}" for k in sorted(exp.keys() - act.keys())[:5]]
    errs += [f"unexpected {k!r}" for k in sorted(act.keys() - exp.keys())[:5]]
    errs += [
        f"{k!r}: expected {exp[k]} got {act[k]}"
        for k in sorted(exp.keys() & act.keys())
        if not math.isclose(exp[k], act[k], rel_tol=1e-9)
    ][:5]
    if errs:
        return False, f"MISMATCH ({len(exp)} expected rows, {len(act)} actual): " + "; ".join(errs)
    return True, f"OK {len(act)} rows"


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    """One peer's run, as measured."""

    peer: str
    round: int
    wall_s: float
    max_rss_mb: float
    user_s: float
    sys_s: float
    exit_code: int
    correct: bool
    check: str


def measure(cmd: Sequence[str], cwd: Path, log: Path, timeout: float) -> tuple[float, Any, int]:
    """Run ``cmd`` to completion: (wall seconds, its rusage, exit code); output into ``log``."""
    env = child_env()
    # bytewax.run imports the peer's module by name: it lives in cwd.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), env.get("PYTHONPATH", "")) if p)
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        killer = threading.Timer(timeout, os.kill, (proc.pid, signal.SIGKILL))
        killer.start()
        try:
            # wait4 rather than proc.wait(): it also returns the child's own peak RSS and CPU.
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage, proc.returncode


def run_once(bench: Benchmark, peer: Peer, rnd: int, src: Path, ref: Path,
             timeout: float) -> Run:
    """Run ``peer`` once on ``src`` from a clean output directory and check its output."""
    scratch = WORK / bench.name / peer.name
    scratch.mkdir(parents=True, exist_ok=True)
    job = Job(src, scratch / "out.jsonl", scratch)
    dead = scratch / "dead_letters.jsonl"  # flowlib's default dead-letter file beside out
    for stale in (job.out, dead):
        stale.unlink(missing_ok=True)
    if peer.prepare is not None:
        peer.prepare(job)
    log = scratch / f"round{rnd}.log"
    wall, usage, code = measure(peer.command(job), peer.cwd, log, timeout)
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        ok, msg = False, f"exit {code}: " + " | ".join(tail)
    elif not job.out.exists():
        ok, msg = False, "no output file"
    elif dead.exists() and dead.stat().st_size > 0:
        ok, msg = False, f"dead letters written to {dead}"
    else:
        ok, msg = bench.check(ref, job.out)
    return Run(peer.name, rnd, wall, usage.ru_maxrss / 1024, usage.ru_utime, usage.ru_stime,
               code, ok, msg)


# --- reporting -------------------------------------------------------------------------------


@dataclass
class Summary:
    """Medians of a peer's correct runs."""

    peer: str
    runs: int
    correct: int
    wall_s: float | None
    events_per_s: float | None
    max_rss_mb: float | None
    cpu_s: float | None


@dataclass
class Ratio:
    """flowlib's events/s over a peer's, from the medians; ``None`` without correct runs.

    ``per_round`` pairs the runs of the same round (neighbours in time, so they share the
    machine's load of that moment); its median is a cross-check on a noisy machine.
    """

    name: str
    measured: float | None
    target: float | None
    per_round: list[float]
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        self.met = (None if self.measured is None or self.target is None
                    else self.measured >= self.target)

    def text(self) -> str:
        got = "n/a (no correct run)" if self.measured is None else f"{self.measured:.2f}x"
        if self.per_round:
            rounds = ", ".join(f"{x:.2f}" for x in self.per_round)
            got += f" (per round: {rounds}; median {statistics.median(self.per_round):.2f}x)"
        if self.target is None:
            return f"{self.name}: {got}, no target"
        verdict = "" if self.met is None else ("  MET" if self.met else "  MISSED")
        return f"{self.name}: {got} / target >= {self.target:g}x{verdict}"


def summarise(peer: str, runs: list[Run], events: int) -> Summary:
    good = [r for r in runs if r.correct]
    if not good:
        return Summary(peer, len(runs), 0, None, None, None, None)
    wall = statistics.median(r.wall_s for r in good)
    return Summary(
        peer, len(runs), len(good), wall, events / wall,
        statistics.median(r.max_rss_mb for r in good),
        statistics.median(r.user_s + r.sys_s for r in good),
    )


def ratios(summaries: dict[str, Summary], runs: list[Run], target: float,
           plain_target: float | None = None) -> list[Ratio]:
    fl = summaries.get("flowlib")
    out = []
    for other, tgt in (("bytewax", target), ("plain", plain_target)):
        s = summaries.get(other)
        if fl is None or s is None:
            continue
        measured = (None if fl.events_per_s is None or s.events_per_s is None
                    else fl.events_per_s / s.events_per_s)
        walls: dict[tuple[str, int], float] = {(r.peer, r.round): r.wall_s
                                               for r in runs if r.correct}
        per_round = [walls[other, rnd] / walls["flowlib", rnd]
                     for rnd in sorted({r.round for r in runs})
                     if ("flowlib", rnd) in walls and (other, rnd) in walls]
        out.append(Ratio(f"flowlib/{other}", measured, tgt, per_round))
    bx = summaries.get("bytewax")
    for name, s in summaries.items():  # variants of the flowlib peer: reported, no target
        if not name.startswith("flowlib-") or bx is None:
            continue
        walls = {(r.peer, r.round): r.wall_s for r in runs if r.correct}
        measured = (None if s.events_per_s is None or bx.events_per_s is None
                    else s.events_per_s / bx.events_per_s)
        per_round = [walls["bytewax", rnd] / walls[name, rnd]
                     for rnd in sorted({r.round for r in runs})
                     if (name, rnd) in walls and ("bytewax", rnd) in walls]
        out.append(Ratio(f"{name}/bytewax", measured, None, per_round))
    return out


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(bench: Benchmark, summaries: list[Summary], rats: list[Ratio],
                events: int, rounds: int) -> None:
    print(f"\n== {bench.name}: {bench.description}; {rounds} rounds, medians of correct runs")
    print(f"{'peer':<8} {'correct':>7} {'wall s':>8} {'events/s':>11} {'CPU s':>7} "
          f"{'maxRSS MB':>10}")
    for s in summaries:
        eps = "-" if s.events_per_s is None else f"{s.events_per_s / 1000:,.0f} K"
        print(f"{s.peer:<8} {s.correct:>3}/{s.runs:<3} {_fmt(s.wall_s, '.2f'):>8} {eps:>11} "
              f"{_fmt(s.cpu_s, '.2f'):>7} {_fmt(s.max_rss_mb, '.0f'):>10}")
    for r in rats:
        print("  " + r.text())


def run_benchmark(bench: Benchmark, events: int, rounds: int, peers: list[str],
                  timeout: float) -> dict[str, Any]:
    """All rounds of one benchmark, peers alternating; returns the results document."""
    WORK.mkdir(parents=True, exist_ok=True)
    src = bench.make_input()
    ref = bench.make_reference(src)
    # Read the input once so every peer reads it from the page cache, the first one included.
    with src.open("rb") as f:
        while f.read(1 << 24):
            pass
    chosen = [p for p in bench.peers if p.name in peers]
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    runs: list[Run] = []
    for rnd in range(1, rounds + 1):
        for peer in chosen:
            r = run_once(bench, peer, rnd, src, ref, timeout)
            runs.append(r)
            verdict = "ok" if r.correct else f"INCORRECT: {r.check}"
            print(f"{bench.name} round {rnd}/{rounds} {peer.name:<8} {r.wall_s:7.2f} s "
                  f"{events / r.wall_s / 1000:8,.0f} K events/s {r.max_rss_mb:6.0f} MB  {verdict}",
                  flush=True)
    summaries = [summarise(p.name, [r for r in runs if r.peer == p.name], events)
                 for p in chosen]
    # The stretch goal of the shared workload (issue 7): as fast as the plain Python loop.
    rats = ratios({s.peer: s for s in summaries}, runs, bench.target,
                  1.0 if bench.name == "log_agg" else None)
    print_table(bench, summaries, rats, events, rounds)
    return {
        "benchmark": bench.name,
        "description": bench.description,
        "date": started.isoformat(timespec="seconds"),
        "events": events,
        "rounds": rounds,
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "input": shown(src),
        "runs": [asdict(r) for r in runs],
        "medians": [asdict(s) for s in summaries],
        "ratios": [asdict(r) for r in rats],
        "targets": [
            Target(f"{bench.name} {r.name} events/s", r.measured, r.target, "x",
                   note="stretch goal" if r.name == "flowlib/plain" else "").as_dict()
            for r in rats if r.target is not None
        ],
    }


@dataclass(frozen=True)
class Script:
    """A standalone benchmark script: its arguments for a full run and for a smaller one."""

    name: str
    path: Path
    args: Callable[[int, int], list[str]]
    """(events, rounds) -> arguments; full-size runs get none."""
    extra: bool = False
    """Run only with ``--extras`` (long, or owned by another part of the suite)."""


SCRIPTS = [
    Script("typed_vs_untyped", BENCH / "typed_vs_untyped.py",
           lambda n, r: ["--events", str(n), "--rounds", str(r)]),
    Script("decode", BENCH / "decode_bench.py",
           lambda n, r: ["--events", str(min(n, 200_000))]),
    Script("scaling", BENCH / "scaling.py",
           lambda n, r: ["--events", str(n), "--cpu-events", str(max(1000, n * 3 // 10)),
                         "--rounds", str(r)]),
    Script("key_scaling", BENCH / "key_scaling.py",
           lambda n, r: ["--keys", f"100,{max(200, n // 10)}", "--disk-at",
                         str(max(200, n // 10)), "--events", str(n)]),
    Script("checkpoint", BENCH / "checkpoint_bench.py",
           lambda n, r: ["--keys", str(n), "--rounds", str(r)], extra=True),
    Script("state_scale", BENCH / "state_scale.py", lambda n, r: ["--keys", str(n)], extra=True),
]
PEER_BENCHES = ("log_agg", "keys", "windows", "sliding")


def run_script(
    script: Script, events: int, rounds: int, timeout: float
) -> tuple[bool, list[Path]]:
    """Run one standalone benchmark: whether it succeeded (its outputs correct), and the result
    files it wrote."""
    full = events == DEFAULT_EVENTS and rounds == 3
    cmd = _python(str(script.path), *([] if full else script.args(events, rounds)))
    print(f"\n== {script.name}: {' '.join(cmd[1:])}", flush=True)
    started = time.time()
    env = child_env()
    try:
        code = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        code = -1
        print(f"  {script.name}: killed after {timeout:.0f} s", flush=True)
    written = [f for d in (RESULTS, WORK / "results") if d.is_dir() for f in d.glob("*.json")
               if f.stat().st_mtime >= started and f.name != "summary.json"]
    if code != 0:
        print(f"  {script.name}: exit status {code}", flush=True)
    return code == 0 and bool(written), written


def collect(paths: list[Path]) -> list[dict[str, Any]]:
    """The targets of result files, each with the benchmark's name and date."""
    out = []
    for path in paths:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        targets = doc.get("targets")
        if targets is None:  # a peer benchmark's results from before targets were recorded
            targets = [
                {"name": f"{doc.get('benchmark')} {r['name']} events/s", "measured":
                 r["measured"], "target": r["target"], "unit": "x", "higher": True,
                 "met": r["met"], "note": "recorded before issue 7"}
                for r in doc.get("ratios", []) if r.get("target") is not None
            ]
        for t in targets:
            out.append({**t, "benchmark": doc.get("benchmark", path.stem),
                        "date": doc.get("date"), "file": shown(path)})
    return out


def target_line(t: dict[str, Any]) -> str:
    got = "n/a" if t.get("measured") is None else f"{t['measured']:.3g}"
    sign = ">=" if t.get("higher", True) else "<="
    verdict = "met" if t.get("met") else "MISSED"
    note = f"  ({t['note']})" if t.get("note") else ""
    return (f"{t['name']}: measured {got} / target {sign} {t['target']:g} {t['unit']} -> "
            f"{verdict}{note}")


def chart(targets: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Bars of measured relative to target (1 = exactly on target; right of it = met)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  no chart: matplotlib is not installed (pip install -e '.[bench]')")
        return False
    rows = [t for t in targets if t.get("measured") is not None and t["target"]]
    if not rows:
        return False
    score = [(t["measured"] / t["target"]) if t.get("higher", True) else
             (t["target"] / t["measured"] if t["measured"] else float("inf")) for t in rows]
    labels = [f"{t['name']}\n{t['measured']:.3g} / {t['target']:g} {t['unit']}" for t in rows]
    fig, ax = plt.subplots(figsize=(13, 0.42 * len(rows) + 1.6))
    ys = range(len(rows))
    colors = ["#3a8d3a" if t.get("met") else "#c0392b" for t in rows]
    # Clamped to the axis: zero or negative figures (e.g. "-20 % fewer") show as a stub.
    ax.barh(list(ys), [min(max(x, 0.02), 10.0) for x in score], color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("measured relative to target (>= 1: met; lower-is-better targets inverted)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _names(text: str | None) -> set[str]:
    return {x for x in (text or "").split(",") if x}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events per input")
    p.add_argument("--keys", type=int, default=DEFAULT_KEYS, help="distinct keys (keys bench)")
    p.add_argument("--rounds", type=int, default=3, help="runs of every peer (default 3)")
    every = [*PEER_BENCHES, *(s.name for s in SCRIPTS)]
    p.add_argument("--only", help=f"comma-separated benchmarks to run, of: {','.join(every)}")
    p.add_argument("--skip", help="comma-separated benchmarks to leave out")
    p.add_argument("--extras", action="store_true",
                   help="also the long standalone benchmarks (checkpoint, state_scale)")
    p.add_argument("--peers", default=",".join(PEERS),
                   help=f"comma-separated subset of {','.join(PEERS + OPTIONAL_PEERS)}")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed")
    p.add_argument("--no-chart", action="store_true", help="no summary.png")
    p.add_argument("--summary-only", action="store_true",
                   help="run nothing: summarise bench/results/*.json (targets, summary.png)")
    args = p.parse_args(argv)
    peers = [x for x in args.peers.split(",") if x]
    if unknown := set(peers) - set(PEERS) - set(OPTIONAL_PEERS):
        p.error(f"unknown peers: {', '.join(sorted(unknown))}")
    if args.events < 1 or args.rounds < 1 or args.keys < 1:
        p.error("--events, --keys and --rounds must be at least 1")
    only, skip = _names(args.only), _names(args.skip)
    if unknown := (only | skip) - set(every):
        p.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")

    def chosen(name: str, extra: bool = False) -> bool:
        return name not in skip and (name in only if only else not extra or args.extras)

    started = dt.datetime.now(dt.UTC)
    if args.summary_only:
        found = sorted(f for f in RESULTS.glob("*.json") if f.name != "summary.json")
        return summarise_suite(found, RESULTS, started, argv, args.no_chart, True)
    benches = [log_agg(args.events), keys(args.events, args.keys),
               windows(args.events, sliding=False), windows(args.events, sliding=True)]
    all_correct = True
    written: list[Path] = []
    full = args.events == DEFAULT_EVENTS and args.keys == DEFAULT_KEYS and peers == list(PEERS)
    for bench in benches:
        if not chosen(bench.name):
            continue
        doc = run_benchmark(bench, args.events, args.rounds, peers, args.timeout)
        # Only full-size runs of every peer are results; smaller ones are smoke tests.
        dest = RESULTS if full else WORK / "results"
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / (f"{bench.name}.json" if full else f"{bench.name}-{args.events}.json")
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"  results: {shown(path)}")
        written.append(path)
        all_correct &= all(r["correct"] for r in doc["runs"])
    for script in SCRIPTS:
        if not chosen(script.name, script.extra):
            continue
        if not script.path.exists():
            print(f"\n== {script.name}: {shown(script.path)} is not there, skipped")
            continue
        ok, got = run_script(script, args.events, args.rounds, args.timeout)
        all_correct &= ok
        written += got
    full_suite = full and args.rounds == 3
    dest = RESULTS if full_suite else WORK / "results"
    return summarise_suite(written, dest, started, argv, args.no_chart, all_correct)


def summarise_suite(written: list[Path], dest: Path, started: dt.datetime,
                    argv: list[str] | None, no_chart: bool, all_correct: bool) -> int:
    """Print every target of the result files, write summary.json and the chart."""
    targets = collect(written)
    dest.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/run.py", *(argv if argv is not None
                                                          else sys.argv[1:])]),
        "machine": machine(),
        "load_average_after": os.getloadavg(),
        "results": {str(shown(f)): json.loads(f.read_text()).get("date") for f in written},
        "targets": targets,
    }
    (dest / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    m = summary["machine"]
    print(f"\n== targets ({summary['date']}, {m['cpu']}, {m['cores']} cores, "
          f"{m['memory_gb']} GB, Python {m['python']})")
    for t in targets:
        print("TARGET " + target_line(t))
    met = sum(1 for t in targets if t.get("met"))
    print(f"{met} of {len(targets)} targets met; summary: {shown(dest / 'summary.json')}")
    if not no_chart and chart(targets, dest / "summary.png",
                              f"flowlib benchmarks {summary['date']} on {m['cpu']}, "
                              f"{m['cores']} cores"):
        print(f"chart: {shown(dest / 'summary.png')}")
    return 0 if all_correct else 1


if __name__ == "__main__":
    sys.exit(main())
