"""The operators of examples/ssh_attacks.py under the harness; the harness against the engine."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlib import Flow, Sink
from flowlib.testing import ProcessorHarness, assert_outputs, run_flow
from flowlib.testing.properties import (
    assert_engine_agrees,
    assert_order_insensitive,
    assert_snapshot_restore_identity,
)
from flowlib.testing.strategies import event_times, from_type
from operators.aggregate import Count, Keyed
from operators.templates import TemplateMatcher

with mock.patch.object(sys, "argv", ["ssh_attacks.py"]):  # the script parses its arguments
    from examples import ssh_attacks
    from examples.ssh_attacks import (
        AttackerReport,
        AttackerState,
        LoginAttempt,
        SshEvent,
        TemplateCount,
        TrackAttackers,
        to_attempts,
    )

T = TypeVar("T")
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MATCHER = TemplateMatcher.from_csv(ssh_attacks.DATA / "OpenSSH_2k.log_templates.csv")
T0 = datetime(2024, 12, 10, 6, 0, tzinfo=UTC)
LOG = (ssh_attacks.DATA / "OpenSSH_2k.log").read_text().splitlines()


Attackers = ProcessorHarness[LoginAttempt, AttackerReport, str, AttackerState]


def attackers(key_groups: int = 1) -> Attackers:
    return ProcessorHarness(TrackAttackers(), key=lambda a: a.remote, key_groups=key_groups)


def template_counts() -> ProcessorHarness[SshEvent, Keyed[str, int], str, int]:
    return ProcessorHarness(
        Count[SshEvent, str](), key=lambda e: e.template_id, key_type=str,
        step="count_per_template",
    )


def example_flow() -> Flow:
    return ssh_attacks.build(ssh_attacks.arguments([]))


def sink_of(flow: Flow, item_type: type[T]) -> Sink[T]:
    (sink,) = [n.sink for n in flow.sinks if n.sink.item_type is item_type]
    return cast(Sink[T], sink)


def parsed(lines: list[str]) -> list[SshEvent]:
    parse = ssh_attacks.Parser(MATCHER)
    events = []
    for line in lines:
        with contextlib.suppress(ValueError):
            events.append(parse(line))
    return events


def render(attempt: LoginAttempt, noise: bool) -> SshEvent:
    """A sshd event that ``to_attempts`` turns back into ``attempt`` (or, for noise, into
    nothing)."""
    if noise:
        return SshEvent(attempt.ts, 1, "E2", f"Connection closed by {attempt.remote} [preauth]")
    invalid = "invalid user " if attempt.invalid_user else ""
    template = "E10" if attempt.invalid_user else "E9"
    message = f"Failed password for {invalid}{attempt.user} from {attempt.remote} port 22 ssh2"
    return SshEvent(attempt.ts, 1, template, message)


ATTEMPTS = st.lists(
    from_type(
        LoginAttempt,
        remote=st.sampled_from(["10.0.0.1", "10.0.0.2", "173.234.31.186"]),
        user=st.sampled_from(["root", "admin", "", "0101", "test user"]),
        ts=event_times(T0, timedelta(hours=1)),
    ),
    max_size=15,
)
EVENTS = st.lists(st.builds(render, ATTEMPTS.filter(bool).map(lambda a: a[0]), st.booleans()),
                  max_size=15)


# --- parsing and login attempts ---------------------------------------------------------------


def test_parser_and_to_attempts_on_real_lines() -> None:
    line = next(x for x in LOG if "Failed password for invalid user webmaster" in x)
    event = ssh_attacks.Parser(MATCHER)(line)
    assert event.template_id == "E10"
    [attempt] = to_attempts(event)
    assert (attempt.remote, attempt.user, attempt.invalid_user) == (
        "173.234.31.186", "webmaster", True
    )
    assert attempt.ts == event.ts
    assert to_attempts(SshEvent(T0, 1, "E2", "Connection closed by 1.2.3.4 [preauth]")) == []
    with pytest.raises(ValueError, match="without user and address"):
        to_attempts(SshEvent(T0, 1, "E9", "Failed password, nothing else"))


@SETTINGS
@given(attempt=ATTEMPTS.filter(bool).map(lambda a: a[0]))
def test_rendered_attempts_parse_back(attempt: LoginAttempt) -> None:
    assert to_attempts(render(attempt, noise=False)) == [attempt]
    assert to_attempts(render(attempt, noise=True)) == []


# --- TrackAttackers ------------------------------------------------------------------------------


def test_attackers_accumulate_per_remote_address() -> None:
    h = attackers()
    h.push_many([
        LoginAttempt(T0 + timedelta(minutes=5), "10.0.0.1", "root", False),
        LoginAttempt(T0, "10.0.0.1", "admin", True),
        LoginAttempt(T0 + timedelta(minutes=1), "10.0.0.2", "root", False),
        LoginAttempt(T0 + timedelta(minutes=2), "10.0.0.1", "root", True),
    ])
    assert h.state["10.0.0.1"] == AttackerState(
        3, 2, {"root", "admin"}, T0, T0 + timedelta(minutes=5)
    )
    assert h.outputs == []
    assert h.end_of_input() == [
        AttackerReport("10.0.0.1", 3, 2, 2, T0, T0 + timedelta(minutes=5)),
        AttackerReport("10.0.0.2", 1, 0, 1, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1)),
    ]


@SETTINGS
@given(attempts=ATTEMPTS, split=st.integers(0, 15))
def test_attacker_state_survives_snapshot_and_restore(
    attempts: list[LoginAttempt], split: int
) -> None:
    # a dataclass state with a set and optional datetimes, through Arrow and back
    assert_snapshot_restore_identity(attackers, attempts, split)


@SETTINGS
@given(attempts=ATTEMPTS, data=st.data())
def test_reports_do_not_depend_on_arrival_order(
    attempts: list[LoginAttempt], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(attempts))
    assert_order_insensitive(attackers, attempts, shuffled)


@SETTINGS
@given(attempts=ATTEMPTS)
def test_harness_and_engine_agree_on_attackers(attempts: list[LoginAttempt]) -> None:
    assert_engine_agrees(lambda: attackers(key_groups=4), attempts, workers=2)


@SETTINGS
@given(events=EVENTS)
def test_harness_and_engine_agree_on_template_counts(events: list[SshEvent]) -> None:
    assert_engine_agrees(template_counts, events)


# --- the whole example flow ------------------------------------------------------------------


def harnessed(events: list[SshEvent]) -> tuple[list[AttackerReport], list[TemplateCount]]:
    tracker, counts = attackers(), template_counts()
    for e in events:
        counts.push(e)
        for attempt in to_attempts(e):
            tracker.push(attempt)
    tracker.end_of_input()
    counts.end_of_input()
    return tracker.outputs, [TemplateCount(k.key, k.value) for k in counts.outputs]


@SETTINGS
@given(events=EVENTS)
def test_the_example_flow_gives_what_the_harnessed_operators_give(events: list[SshEvent]) -> None:
    flow = example_flow()
    result = run_flow(flow, {"parse": events}, workers=2)
    reports, counts = harnessed(events)
    assert_outputs(result.outputs(sink_of(flow, AttackerReport)), reports, ordered=False)
    assert_outputs(result.outputs(sink_of(flow, TemplateCount)), counts, ordered=False)
    assert result.dead_letters == []


def test_the_example_flow_on_the_whole_sample_matches_the_harness() -> None:
    flow = example_flow()
    result = run_flow(flow)  # the bundled log, read as it is
    reports, counts = harnessed(parsed(LOG))
    assert len(reports) > 10 and sum(c.count for c in counts) == len(LOG)
    assert_outputs(result.outputs(sink_of(flow, AttackerReport)), reports, ordered=False)
    assert_outputs(result.outputs(sink_of(flow, TemplateCount)), counts, ordered=False)


def test_the_example_flow_survives_a_crash_on_real_data() -> None:
    events = parsed(LOG[:60])
    flow = example_flow()
    plain = run_flow(flow, {"parse": events})
    resumed = run_flow(flow, {"parse": events}, crash_after=30)
    assert resumed.crashed
    for item_type in (AttackerReport, TemplateCount):
        sink: Sink[Any] = sink_of(flow, item_type)
        assert_outputs(resumed.outputs(sink), plain.outputs(sink), ordered=False)
