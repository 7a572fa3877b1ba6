"""Brute-force attempts per remote address in real OpenSSH logs (LogHub sample).

A different key and state than ``log_agg``: keyed by the remote IP address (``str``), with a
dataclass state (attempt counts, the set of user names tried, first and last time seen). Also
counts events per LogHub template. Lines that do not parse or match no template become dead
letters.

    flowlib run examples/ssh_attacks.py [LOG_FILE] [--templates CSV] [--out DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from typing_extensions import override

from flowlib import Context, Flow, JsonLinesSink, Processor, TextLines
from operators.aggregate import Count, Keyed
from operators.loghub import parse_openssh
from operators.templates import TemplateMatcher

DATA = Path(__file__).resolve().parent / "data" / "loghub" / "OpenSSH"

# Templates whose message is a failed login attempt: E8 "Failed none for invalid user",
# E9 "Failed password for", E10 "Failed password for invalid user".
FAILED_LOGIN = {"E8", "E9", "E10"}
# User names may be empty or contain spaces ("invalid user  0101" is in the sample).
_ATTEMPT = re.compile(r"for (?:invalid user )?(.*?) from (\S+) port")


@dataclass(frozen=True, slots=True)
class SshEvent:
    ts: datetime
    pid: int
    template_id: str
    message: str


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    ts: datetime
    remote: str
    user: str
    invalid_user: bool


@dataclass(slots=True)
class AttackerState:
    attempts: int = 0
    invalid_user_attempts: int = 0
    users: set[str] = field(default_factory=set)
    first_seen: datetime | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttackerReport:
    remote: str
    attempts: int
    invalid_user_attempts: int
    distinct_users: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class TemplateCount:
    template_id: str
    count: int


class TrackAttackers(Processor[LoginAttempt, AttackerReport, str, AttackerState]):
    """Accumulates the attempts of each remote address; reports every address at the end."""

    @override
    def process(
        self, ctx: Context[str, AttackerState, AttackerReport], event: LoginAttempt
    ) -> None:
        st = ctx.state.get_optional() or AttackerState()
        st.attempts += 1
        st.invalid_user_attempts += event.invalid_user
        st.users.add(event.user)
        if st.first_seen is None or event.ts < st.first_seen:
            st.first_seen = event.ts
        if st.last_seen is None or event.ts > st.last_seen:
            st.last_seen = event.ts
        ctx.state.set(st)

    @override
    def on_eof(self, ctx: Context[str, AttackerState, AttackerReport]) -> None:
        st = ctx.state.get_optional()
        if st is None or st.first_seen is None or st.last_seen is None:
            return
        ctx.emit(
            AttackerReport(
                ctx.key, st.attempts, st.invalid_user_attempts, len(st.users),
                st.first_seen, st.last_seen,
            )
        )


class Parser:
    """Raw syslog line -> SshEvent; raises (making a dead letter) when it cannot."""

    def __init__(self, matcher: TemplateMatcher) -> None:
        self.matcher = matcher

    def __call__(self, line: str) -> SshEvent:
        rec = parse_openssh(line)
        template_id = self.matcher.match(rec.message)
        if template_id is None:
            msg = f"no template matches message {rec.message[:80]!r}"
            raise ValueError(msg)
        return SshEvent(rec.ts, rec.pid, template_id, rec.message)


def to_attempts(e: SshEvent) -> list[LoginAttempt]:
    if e.template_id not in FAILED_LOGIN:
        return []
    m = _ATTEMPT.search(e.message)
    if m is None:
        msg = f"failed-login message without user and address: {e.message!r}"
        raise ValueError(msg)
    return [LoginAttempt(e.ts, m.group(2), m.group(1), "invalid user" in e.message)]


def arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ssh_attacks")
    p.add_argument("log", nargs="?", type=Path, default=DATA / "OpenSSH_2k.log")
    p.add_argument("--templates", type=Path, default=DATA / "OpenSSH_2k.log_templates.csv")
    p.add_argument("--out", type=Path, default=Path("out/ssh_attacks"))
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> Flow:
    matcher = TemplateMatcher.from_csv(args.templates)
    flow = Flow("ssh_attacks")
    events = flow.source(TextLines(args.log, parse=Parser(matcher)), name="parse")
    attempts = events.flat_map(to_attempts, name="login_attempts")
    reports = attempts.key_by(lambda a: a.remote, key_type=str).process(TrackAttackers())
    reports.sink(JsonLinesSink(args.out / "attackers.jsonl", AttackerReport))

    def template_count(c: Keyed[str, int]) -> TemplateCount:
        return TemplateCount(c.key, c.value)

    counts = events.key_by(lambda e: e.template_id, key_type=str).process(
        Count(), name="count_per_template"
    )
    counts.map(template_count).sink(
        JsonLinesSink(args.out / "counts_by_template.jsonl", TemplateCount)
    )
    return flow


flow = build(arguments(sys.argv[1:]))
