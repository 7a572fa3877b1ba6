"""A flow whose state type has versions, for the schema-evolution tests (run by ``flowlib run``).

Per first word of an OpenSSH message (LogHub sample): lines seen, total message length and the
time span. ``--state`` picks the state type:

- ``v1``: ``lines: int``, ``total_len: int``, ``last_pid: int``, ``span: Span1 | None``;
- ``v2``: ``total_len`` widened to float, ``last_pid`` dropped, ``origin: str`` added with
  default ``"checkpoint"`` (new states are made with ``origin="v2"``), and ``Span2`` gained
  ``tz: str = "UTC"``: a compatible change;
- ``bad_type``: ``lines: str``; ``bad_required``: a new ``origin: str`` without default.

``--crash-after N`` ends the process abruptly (``os._exit``, like ``kill -9``) at the N-th line;
``--step`` names the stateful step (to rename it).

    flowlib run tests/flowlib/evolution_flow.py --recovery DIR -- LOG --out DIR [--state v2]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from typing_extensions import override

from flowlib import Context, Flow, JsonLinesSink, Processor, TextLines
from flowlib.testing import CrashAfter
from operators.loghub import OpenSSHLine, parse_openssh


@dataclass
class Span1:
    first: datetime
    last: datetime


@dataclass
class State1:
    lines: int = 0
    total_len: int = 0
    last_pid: int = 0
    span: Span1 | None = None


@dataclass
class Span2:
    first: datetime
    last: datetime
    tz: str = "UTC"


@dataclass
class State2:
    lines: int = 0
    total_len: float = 0.0
    span: Span2 | None = None
    origin: str = "checkpoint"


@dataclass
class StateBadType:
    lines: str = ""
    total_len: int = 0
    last_pid: int = 0
    span: Span1 | None = None


@dataclass
class StateBadRequired:
    origin: str
    lines: int = 0
    total_len: int = 0
    last_pid: int = 0
    span: Span1 | None = None


@dataclass(frozen=True)
class Report:
    key: str
    lines: int
    total_len: float
    first: datetime
    last: datetime
    origin: str
    tz: str


STATES: dict[str, type] = {
    "v1": State1, "v2": State2, "bad_type": StateBadType, "bad_required": StateBadRequired}


class Track(Processor[OpenSSHLine, Report, str, Any]):
    """Accumulates per key; reports every key at the end of input."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.state_type = STATES[version]  # V, read by the flow as the step's state type

    @override
    def process(self, ctx: Context[str, Any, Report], event: OpenSSHLine) -> None:
        st: Any = ctx.state.get_optional()
        if st is None:
            st = State2(origin="v2") if self.version == "v2" else State1()
        st.lines += 1
        st.total_len += len(event.message)
        if self.version == "v1":
            st.last_pid = event.pid
        span_type = Span2 if self.version == "v2" else Span1
        if st.span is None:
            st.span = span_type(event.ts, event.ts)
        else:
            st.span.first = min(st.span.first, event.ts)
            st.span.last = max(st.span.last, event.ts)
        ctx.state.set(st)

    @override
    def on_eof(self, ctx: Context[str, Any, Report]) -> None:
        st = ctx.state.get_optional()
        if st is None or st.span is None:
            return
        ctx.emit(Report(ctx.key, st.lines, st.total_len, st.span.first, st.span.last,
                        getattr(st, "origin", "-"), getattr(st.span, "tz", "-")))


def build(argv: list[str]) -> Flow:
    p = argparse.ArgumentParser(prog="evolution_flow")
    p.add_argument("log", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--state", choices=sorted(STATES), default="v1")
    p.add_argument("--step", default="track")
    p.add_argument("--crash-after", type=int)
    p.add_argument("--pause-every", type=int, default=0)
    args = p.parse_args(argv)
    flow = Flow("evolution")
    # Small batches: checkpoints commit between batches, so several must end before the crash.
    parse = CrashAfter(parse_openssh, after=args.crash_after, pause_every=args.pause_every)
    lines = flow.source(TextLines(args.log, parse=parse, batch_bytes=64 * 1024), name="parse")
    reports = lines.key_by(lambda e: e.message.split(" ", 1)[0], key_type=str).process(
        Track(args.state), name=args.step)
    reports.sink(JsonLinesSink(args.out / "report.jsonl", Report))
    return flow


def flow() -> Flow:
    """The flow, built when ``flowlib`` loads the script (not when pytest imports it)."""
    return build(sys.argv[1:])
