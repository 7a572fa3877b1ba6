"""One key group at run time: its state, timers and watermark, and the processor calls.

Engine-agnostic (no bytewax here): the bytewax adapter in ``_compile`` and the test harness
drive the same :class:`KeyGroup`, so both run the same processor code path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flowlib.codecs import codec_for
from flowlib.dead_letter import DeadLetter
from flowlib.engine._snapshots import decode_snapshot, encode_snapshot
from flowlib.errors import FlowlibError
from flowlib.processor import Context, Processor
from flowlib.state import StateBackend, StateBackendFactory, snapshot_schema
from flowlib.time import END_OF_TIME, EventTime, Late, Timer
from flowlib.timers import TimerTable

__all__ = ["GroupOutput", "KeyGroup", "KeyGroupSpec", "KeyRuns", "LateEventError"]

KeyRuns = list[tuple[Any, list[Any]]]
"""The events of one key group from one upstream batch: ``(key, its events in order)``."""


class LateEventError(FlowlibError):
    """Recorded as the error of a late event that went to the dead letters (no late output)."""


@dataclass(frozen=True)
class KeyGroupSpec:
    """What a keyed step declares: fixed before the first event."""

    step: str
    processor: Processor[Any, Any, Any, Any]
    key_type: object
    state_type: object
    state: StateBackendFactory[Any, Any]
    event_time: EventTime[Any] | None
    late_wired: bool
    fail: bool
    recovery: bool
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class GroupOutput:
    """What one call produced."""

    out: list[Any] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    late: list[Late[Any, Any]] = field(default_factory=list)
    seen: int = 0


class KeyGroup:
    """State, timers and watermark of one key group; calls the processor."""

    def __init__(self, spec: KeyGroupSpec, resume: bytes | None) -> None:
        self.spec = spec
        key_codec, value_codec = codec_for(spec.key_type), codec_for(spec.state_type)
        self.backend: StateBackend[Any, Any] = spec.state(key_codec, value_codec)
        self.timers = TimerTable()
        self.watermark: datetime | None = None
        self.max_event_time: datetime | None = None
        self.eof_done = False
        self._last_event_wall: datetime | None = None
        if resume is not None:
            snap = decode_snapshot(
                resume, spec.step, snapshot_schema(key_codec, value_codec), key_codec
            )
            self.backend.restore(snap.table)
            for key, t, kind in snap.timers:
                self.timers.add(key, t, kind)
            self.watermark = snap.watermark
            self.max_event_time = snap.max_event_time
            self.eof_done = snap.eof_done
        et = spec.event_time
        self.ctx: Context[Any, Any, Any] = Context(
            spec.step,
            self.backend,
            self.timers,
            spec.now,
            et.allowed_lateness if et is not None else timedelta(0),
        )
        self.ctx.watermark = self.watermark

    # --- events ----------------------------------------------------------------------------

    def process(self, batches: list[KeyRuns]) -> GroupOutput:
        """Handle the events of upstream batches, in order; the watermark advances after each."""
        res = GroupOutput()
        self.ctx._out = res.out
        et = self.spec.event_time
        for runs in batches:
            if et is None:
                self._run(runs, res)
                continue
            if self._run_timed(runs, et, res):
                self._last_event_wall = self.spec.now()
            if self.watermark is not None:
                # Timers set behind the watermark (a late-but-allowed event re-opening a
                # window) are due now, not at the next advance.
                self._fire("event", self.watermark, res)
        return res

    def _run(self, runs: KeyRuns, res: GroupOutput) -> None:
        """``process`` for every event, key by key (no event time: order across keys is free)."""
        process, ctx, spec = self.spec.processor.process, self.ctx, self.spec
        seen = 0
        for key, events in runs:
            ctx.key = key
            seen += len(events)
            for event in events:
                try:  # costs nothing until it catches (zero-cost exceptions, Python 3.11)
                    process(ctx, event)
                except Exception as exc:
                    if spec.fail:
                        raise
                    res.dead.append(DeadLetter.from_error(spec.step, exc, event))
        res.seen += seen

    def _run_timed(self, runs: KeyRuns, et: EventTime[Any], res: GroupOutput) -> bool:
        """Like :meth:`_run`, in arrival order, advancing the watermark after every event and
        routing late events; returns whether any event was seen."""
        process, ctx, spec = self.spec.processor.process, self.ctx, self.spec
        timestamp, delay, lateness = et.timestamp, et.max_out_of_orderness, et.allowed_lateness
        wm = self.watermark
        limit = None if wm is None else wm - lateness
        top = self.max_event_time
        seen = False
        for key, events in runs:
            for event in events:
                seen = True
                res.seen += 1
                try:
                    t = timestamp(event)
                    if limit is not None and t < limit:
                        assert wm is not None
                        res.late.append(Late(spec.step, key, event, t, wm))
                        continue
                    ctx.key = key
                    ctx.event_time = t
                    process(ctx, event)
                except Exception as exc:
                    if spec.fail:
                        raise
                    res.dead.append(DeadLetter.from_error(spec.step, exc, event))
                    continue
                if top is None or t > top:
                    top = self.max_event_time = t
                    if wm is None or (t - delay if delay else t) > wm:
                        # Timers may fire here, between two events of the batch.
                        self._advance(t - delay if delay else t, res)
                        wm = self.watermark
                        assert wm is not None
                        limit = wm - lateness
        ctx.event_time = None
        return seen

    # --- time ------------------------------------------------------------------------------

    def advance_watermark(self, watermark: datetime) -> GroupOutput:
        """Move the watermark to ``watermark`` (never backwards), firing the event-time timers
        now due; for test harnesses, which drive event time explicitly."""
        res = GroupOutput()
        self._advance(watermark, res)
        return res

    def _advance(self, watermark: datetime, res: GroupOutput) -> None:
        if self.watermark is not None and watermark <= self.watermark:
            return
        self.watermark = watermark
        self.ctx.watermark = watermark
        # Runs per event on ordered input: look at the earliest timer before doing more.
        upcoming = self.timers.peek("event")
        if upcoming is not None and upcoming <= watermark:
            self._fire("event", watermark, res)

    def _fire(self, kind: Any, upto: datetime, res: GroupOutput) -> None:
        on_timer, ctx, spec = self.spec.processor.on_timer, self.ctx, self.spec
        ctx._out = res.out
        # Timers set while firing, at or before ``upto``, fire in this same pass.
        while due := self.timers.pop_due(kind, upto):
            for t, key in due:
                ctx.key = key
                try:
                    on_timer(ctx, Timer(t, kind))
                except Exception as exc:
                    if spec.fail:
                        raise
                    res.dead.append(
                        DeadLetter.from_error(spec.step, exc, {"key": key, "timer": t})
                    )

    def next_wakeup(self) -> datetime | None:
        """When wall-clock time next matters: a processing-time timer, or idle advance."""
        times = [t for t in (self.timers.next_time("processing"), self._idle_due()) if t]
        return min(times) if times else None

    def _idle_due(self) -> datetime | None:
        et = self.spec.event_time
        if et is None or et.idle_timeout is None or self._last_event_wall is None:
            return None
        if self.max_event_time is None or self.watermark == END_OF_TIME:
            return None
        start = self._last_event_wall + et.idle_timeout
        nxt = self.timers.next_time("event")
        if nxt is None:
            return start
        # The wall time at which the idle-advancing watermark reaches the next event timer.
        base = self.max_event_time - et.max_out_of_orderness
        return max(start, self._last_event_wall + (nxt - base))

    def wake(self) -> GroupOutput:
        """Fire due processing-time timers and, when idle, advance the watermark."""
        res = GroupOutput()
        now = self.spec.now()
        self._fire("processing", now, res)
        et = self.spec.event_time
        idle = self._idle_due()
        if et is not None and idle is not None and now >= idle:
            assert self.max_event_time is not None and self._last_event_wall is not None
            base = self.max_event_time - et.max_out_of_orderness
            self._advance(base + (now - self._last_event_wall), res)
        return res

    def end_of_input(self) -> GroupOutput:
        """Close every window (watermark to the end of time), then ``on_eof`` per key."""
        res = GroupOutput()
        if self.eof_done:  # a resumed run of a finished input must not emit twice
            return res
        self.eof_done = True
        self._advance(END_OF_TIME, res)
        on_eof, ctx, spec = self.spec.processor.on_eof, self.ctx, self.spec
        ctx._out = res.out
        for key, _ in self.backend.items():
            ctx.key = key
            try:
                on_eof(ctx)
            except Exception as exc:
                if spec.fail:
                    raise
                record = {"key": key, "hook": "on_eof"}
                res.dead.append(DeadLetter.from_error(spec.step, exc, record))
        return res

    # --- checkpoints -----------------------------------------------------------------------

    def snapshot(self) -> bytes | None:
        if not self.spec.recovery:  # bytewax snapshots even with recovery off: make it free
            return None
        s = self.spec
        return encode_snapshot(
            s.step, s.key_type, s.state_type, self.backend.snapshot(), self.timers.entries(),
            self.watermark, self.max_event_time, self.eof_done,
        )

    def late_as_dead(self, late: list[Late[Any, Any]]) -> list[DeadLetter]:
        """Late events as dead letters, for steps whose late output nobody reads."""
        return [
            DeadLetter.from_error(
                e.step,
                LateEventError(
                    f"event time {e.event_time.isoformat()} is behind the watermark "
                    f"{e.watermark.isoformat()} beyond the allowed lateness"
                ),
                e.event,
            )
            for e in late
        ]
