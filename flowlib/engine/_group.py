"""One key group at run time: its state, timers and watermark, and the processor calls.

Engine-agnostic (no bytewax here): the bytewax adapter in ``_compile`` and the test harness
drive the same :class:`KeyGroup`, so both run the same processor code path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from operator import le
from typing import TYPE_CHECKING, Any, cast

from flowlib.codecs import codec_for
from flowlib.dead_letter import DeadLetter
from flowlib.engine._combine import Combined, apply_combined
from flowlib.engine._timing import END_US, MIN_US, Micros
from flowlib.errors import FlowlibError
from flowlib.processor import Context, Processor, ValueState
from flowlib.state import StateBackend, StateBackendFactory, snapshot_schema
from flowlib.time import END_OF_TIME, EventTime, Late, Timer, from_micros, to_micros
from flowlib.timers import TimerTable

if TYPE_CHECKING:  # checkpoint machinery is imported only by groups that checkpoint
    from flowlib.engine._incremental import Checkpoints, GroupStore

__all__ = [
    "GroupOutput", "KeyGroup", "KeyGroupSpec", "KeyRuns", "LateEventError", "TimedRuns",
    "late_as_dead", "read_times", "uses_batches",
]

KeyRuns = list[tuple[Any, list[Any]]]
"""The events of one key group from one upstream batch: ``(key, its events in order)``."""


class TimedRuns:
    """One key group's share of an upstream batch on the batch path of an event-time step:
    ``(key, events, times in microseconds)`` per run. ``by_key``: one run per key, and the
    batch's times never decrease in arrival order; else the runs are consecutive stretches of
    one key, in arrival order."""

    __slots__ = ("by_key", "runs")

    def __init__(self, runs: list[tuple[Any, list[Any], list[int]]], *, by_key: bool) -> None:
        self.runs = runs
        self.by_key = by_key


def uses_batches(
    processor: Processor[Any, Any, Any, Any], event_time: EventTime[Any] | None
) -> bool:
    """Whether the engine hands ``processor`` whole key runs (``process_batch``): it overrides
    the hook, and the stream has no event time or no allowed lateness (re-firing a window per
    late-but-allowed event depends on the watermark per event)."""
    overridden = type(processor).process_batch is not Processor.process_batch
    return overridden and (event_time is None or not event_time.allowed_lateness)


def read_times(
    keys: list[Any], events: list[Any], micros: Micros, fail: bool, dead: list[DeadLetter]
) -> tuple[list[Any], list[Any], list[int], bool]:
    """Keys, events and times (microseconds) of the events whose time is usable, and whether
    those times never decrease; the others go to ``dead`` (or raise, with ``fail``). C-level
    passes when every time is usable."""
    try:
        times = micros.all(events, checked=False)
        # The order check also refuses non-integers; in order, the range check is O(1).
        ordered = all(map(le, times, islice(times, 1, None)))
        if times and not (
            (times[0] if ordered else min(times)) >= MIN_US
            and (times[-1] if ordered else max(times)) < END_US
        ):
            msg = "event time out of range"
            raise ValueError(msg)
        return keys, events, times, ordered
    except Exception:
        pass  # find the unusable ones below
    ok_keys: list[Any] = []
    ok_events: list[Any] = []
    ok_times: list[int] = []
    one, step = micros.one, micros.step
    for k, e in zip(keys, events, strict=True):
        try:
            t = one(e)
        except Exception as exc:
            if fail:
                raise
            dead.append(DeadLetter.from_error(step, exc, e))
            continue
        ok_keys.append(k)
        ok_events.append(e)
        ok_times.append(t)
    return ok_keys, ok_events, ok_times, all(map(le, ok_times, islice(ok_times, 1, None)))


_US = timedelta(microseconds=1)


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
    checkpoints: Checkpoints | None = None  # where and how (full/incremental) with recovery


@dataclass
class GroupOutput:
    """What one call produced."""

    out: list[Any] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    late: list[Late[Any, Any]] = field(default_factory=list)
    seen: int = 0


class KeyGroup:
    """State, timers and watermark of one key group; calls the processor.

    The watermark lives in the context (``ctx.watermark`` and ``ctx.watermark_us``, set
    together by :meth:`_advance`); the largest event time seen is kept in microseconds. Both
    read as datetimes through :attr:`watermark` and :attr:`max_event_time`.
    """

    def __init__(self, spec: KeyGroupSpec, resume: bytes | None) -> None:
        self.spec = spec
        key_codec, value_codec = codec_for(spec.key_type), codec_for(spec.state_type)
        self.backend: StateBackend[Any, Any] = spec.state(key_codec, value_codec)
        self.timers = TimerTable()
        self._top_us: int | None = None
        self._peeked: tuple[datetime | None, int] = (None, 0)
        self.eof_done = False
        self._last_event_wall: datetime | None = None
        self._batched = uses_batches(spec.processor, spec.event_time)
        cp = spec.checkpoints
        self._store: GroupStore | None = None
        if cp is not None and cp.incremental and self.backend.supports_change_tracking:
            from flowlib.engine._incremental import GroupStore

            self._store = GroupStore(cp, spec.step, spec.key_type, spec.state_type, key_codec)
        watermark: datetime | None = None
        if resume is not None:
            from flowlib.engine._snapshots import decode_snapshot

            snap = decode_snapshot(
                resume, spec.step, snapshot_schema(key_codec, value_codec), key_codec,
                value_codec, cp.root if cp is not None else None,
            )
            self.backend.restore(snap.table)
            for rows, deleted in snap.deltas:  # an incremental checkpoint: base, then deltas
                self.backend.apply_changes(rows, deleted)
            if self._store is not None:
                self._store.resume(snap.chain, self.backend)
            for key, t, kind in snap.timers:
                self.timers.add(key, t, kind)
            watermark = snap.watermark
            self._top_us = None if snap.max_event_time is None else to_micros(snap.max_event_time)
            self.eof_done = snap.eof_done
        # Changes are recorded once the group writes deltas (recording costs on every write):
        # from the start when it resumes a chain, else after its first incremental base.
        self._tracking = self._store is not None and self._store.writes_deltas
        if self._tracking:  # before the context binds the backend's accessors
            self.backend.track_changes()
        et = spec.event_time
        self.ctx: Context[Any, Any, Any] = Context(
            spec.step,
            self.backend,
            self.timers,
            spec.now,
            et.allowed_lateness if et is not None else timedelta(0),
        )
        self.ctx.watermark = watermark  # the integer form too

    @property
    def watermark(self) -> datetime | None:
        """The group's watermark (``None`` before any event)."""
        return self.ctx.watermark

    @property
    def watermark_us(self) -> int | None:
        """:attr:`watermark` in microseconds; reading it changes nothing (observers on other
        threads read this one: :attr:`watermark` may convert and store)."""
        return self.ctx.watermark_us

    @property
    def max_event_time(self) -> datetime | None:
        """The largest time of the on-time events seen so far."""
        return None if self._top_us is None else from_micros(self._top_us)

    # --- events ---------------------------------------------------------------------------

    def process(self, batches: list[Any], res: GroupOutput | None = None) -> GroupOutput:
        """Handle the events of upstream batches (:data:`KeyRuns`, or :class:`TimedRuns` from
        the routing of the batch path), in order; the watermark advances with each. Output goes
        to ``res`` (shared by several groups) or a new :class:`GroupOutput`."""
        if res is None:
            res = GroupOutput()
        ctx, spec = self.ctx, self.spec
        ctx._out, ctx._dead, ctx._fail = res.out, res.dead, spec.fail
        et, batched = spec.event_time, self._batched
        for runs in batches:
            if et is None:
                self._run(runs, res, batched)
                continue
            if batched:
                timed = runs if type(runs) is TimedRuns else self._timed(runs, res)
                seen = self._run_batched(timed, et, res)
            else:
                seen = self._run_timed(runs, et, res)
            if seen and et.idle_timeout is not None:  # only idleness reads it
                self._last_event_wall = self.spec.now()
            # Timers set behind the watermark (a late-but-allowed event re-opening a window)
            # are due now, not at the next advance.
            wm_us = ctx.watermark_us
            if wm_us is not None and self._timer_due(wm_us):
                wm = ctx.watermark
                assert wm is not None
                self._fire("event", wm, res)
        return res

    def _timer_due(self, watermark_us: int) -> bool:
        """Whether the earliest event-time timer is at or before ``watermark_us``."""
        upcoming = self.timers.peek("event")
        if upcoming is None:
            return False
        # The heap's top stays the same object across most batches: convert it once.
        if upcoming is not self._peeked[0]:
            self._peeked = (upcoming, to_micros(upcoming))
        return self._peeked[1] <= watermark_us

    def _run(self, runs: KeyRuns | Combined, res: GroupOutput, batched: bool) -> None:
        """``process`` for every event, key by key (no event time: order across keys is free)."""
        process, ctx, spec = self.spec.processor.process, self.ctx, self.spec
        if isinstance(runs, Combined):  # the routing step folded runs into partials (_combine)
            runs = apply_combined(spec.processor, ctx, runs, res, spec.fail)
        seen = 0
        if batched:
            process_batch = spec.processor.process_batch
            for key, events in runs:
                ctx.key = key
                seen += len(events)
                try:
                    process_batch(ctx, events, None)
                except Exception as exc:
                    self._failed_run(events, exc, res)
            res.seen += seen
            return
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

    def _failed_run(self, events: list[Any], exc: Exception, res: GroupOutput) -> None:
        if self.spec.fail:
            raise exc
        res.dead += [DeadLetter.from_error(self.spec.step, exc, e) for e in events]

    def _run_timed(self, runs: KeyRuns, et: EventTime[Any], res: GroupOutput) -> bool:
        """Like :meth:`_run`, in arrival order, advancing the watermark after every event and
        routing late events; returns whether any event was seen."""
        process, ctx, spec = self.spec.processor.process, self.ctx, self.spec
        timestamp = (
            cast(Callable[[Any], datetime], et.timestamp) if et.unit is None else et.datetime_of
        )
        delay, lateness = et.max_out_of_orderness, et.allowed_lateness
        delay_us = delay // _US
        wm = ctx.watermark
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
                except Exception as exc:
                    if spec.fail:
                        raise
                    res.dead.append(DeadLetter.from_error(spec.step, exc, event))
                    continue
                try:
                    process(ctx, event)
                except Exception as exc:
                    # On time: its time still counts for the watermark, as on the batch
                    # path, where lateness is decided before the processor runs.
                    if spec.fail:
                        raise
                    res.dead.append(DeadLetter.from_error(spec.step, exc, event))
                if top is None or t > top:
                    top = t
                    top_us = self._top_us = to_micros(t)
                    if wm is None or (t - delay if delay else t) > wm:
                        # Timers may fire here, between two events of the batch.
                        self._advance(t - delay if delay else t, top_us - delay_us, res)
                        wm = ctx.watermark
                        assert wm is not None
                        limit = wm - lateness
        ctx.event_time = None
        return seen

    def _timed(self, runs: KeyRuns, res: GroupOutput) -> TimedRuns:
        """Runs given without times (by callers driving a KeyGroup directly), with times."""
        et = self.spec.event_time
        assert et is not None
        keys = [key for key, events in runs for _ in events]
        events = [e for _, evs in runs for e in evs]
        dead: list[DeadLetter] = []
        micros = Micros(et, self.spec.step)
        keys, events, times, _ = read_times(keys, events, micros, self.spec.fail, dead)
        res.seen += len(dead)
        res.dead += dead
        out: list[tuple[Any, list[Any], list[int]]] = []
        for k, e, t in zip(keys, events, times, strict=True):
            if out and out[-1][0] is k:
                out[-1][1].append(e)
                out[-1][2].append(t)
            else:
                out.append((k, [e], [t]))
        return TimedRuns(out, by_key=False)

    def _run_batched(self, timed: TimedRuns, et: EventTime[Any], res: GroupOutput) -> bool:
        """The batch path (``allowed_lateness == 0``): route late events by the watermark in
        force at each one's arrival, then hand each key's on-time events to ``process_batch``
        under the watermark before the batch; timers fire after it. Returns whether any event
        was seen."""
        spec, ctx = self.spec, self.ctx
        step = spec.step
        wm_us = ctx.watermark_us
        top_us = old_top_us = self._top_us
        late = res.late
        seen = 0
        delay = et.max_out_of_orderness // _US
        process_batch = spec.processor.process_batch
        ctx.event_time = None
        if timed.by_key:
            # Times never decrease in arrival order, so each event is at or after every
            # earlier one: it can only be behind the watermark from before the batch. Each
            # key's run goes to the processor as soon as its late events are split off.
            ctx.times_sorted = True  # a subsequence of a non-decreasing batch
            for key, events, times in timed.runs:
                seen += len(events)
                if wm_us is not None and times[0] < wm_us:
                    cut = bisect_left(times, wm_us)
                    wm = ctx.watermark
                    assert wm is not None
                    late += [
                        Late(step, key, e, from_micros(t), wm)
                        for e, t in zip(events[:cut], times[:cut], strict=True)
                    ]
                    if cut == len(events):
                        continue
                    events, times = events[cut:], times[cut:]
                if top_us is None or times[-1] > top_us:
                    top_us = times[-1]
                ctx.key = key
                try:
                    process_batch(ctx, events, times)
                except Exception as exc:
                    self._failed_run(events, exc, res)
            ctx.times_sorted = False
        else:
            # The watermark at each arrival: the larger of the one before the batch and the
            # largest on-time time so far minus the delay.
            mark = wm_us
            by_key: dict[Any, tuple[list[Any], list[int]]] = {}
            for key, events, times in timed.runs:
                seen += len(events)
                for e, t in zip(events, times, strict=True):
                    if mark is not None and t < mark:
                        late.append(Late(step, key, e, from_micros(t), from_micros(mark)))
                        continue
                    if top_us is None or t > top_us:
                        top_us = t
                        if mark is None or t - delay > mark:
                            mark = t - delay
                    run = by_key.get(key)
                    if run is None:
                        by_key[key] = ([e], [t])
                    else:
                        run[0].append(e)
                        run[1].append(t)
            for key, (events, times) in by_key.items():
                ctx.key = key
                try:
                    process_batch(ctx, events, times)
                except Exception as exc:
                    self._failed_run(events, exc, res)
        res.seen += seen
        if top_us is not None and (old_top_us is None or top_us > old_top_us):
            self._top_us = top_us
            if wm_us is None or top_us - delay > wm_us:
                self._advance(None, top_us - delay, res)
        return seen > 0

    # --- time ------------------------------------------------------------------------------

    def advance_watermark(self, watermark: datetime) -> GroupOutput:
        """Move the watermark to ``watermark`` (never backwards), firing the event-time timers
        now due; for test harnesses, which drive event time explicitly."""
        res = GroupOutput()
        self._advance(watermark, to_micros(watermark), res)
        return res

    def _advance(self, watermark: datetime | None, watermark_us: int, res: GroupOutput) -> None:
        """Move the watermark to ``watermark_us`` (``watermark`` is the same as a datetime,
        when the caller has it), firing due timers."""
        ctx = self.ctx
        old = ctx.watermark_us
        if old is not None and watermark_us <= old:
            return
        ctx._set_watermark(watermark, watermark_us)  # the datetime converted when read
        if self._timer_due(watermark_us):
            wm = ctx.watermark
            assert wm is not None
            self._fire("event", wm, res)

    def _fire(self, kind: Any, upto: datetime, res: GroupOutput) -> None:
        on_timer, ctx, spec = self.spec.processor.on_timer, self.ctx, self.spec
        ctx._out, ctx._dead, ctx._fail = res.out, res.dead, spec.fail
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
        # Called after every batch (bytewax's notify_at): no list, no min() in the usual case.
        timer, idle = self.timers.next_time("processing"), self._idle_due()
        if timer is None or idle is None:
            return idle if timer is None else timer
        return min(timer, idle)

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

    def wake(self, res: GroupOutput | None = None) -> GroupOutput:
        """Fire due processing-time timers and, when idle, advance the watermark."""
        if res is None:
            res = GroupOutput()
        now = self.spec.now()
        self._fire("processing", now, res)
        et = self.spec.event_time
        idle = self._idle_due()
        if et is not None and idle is not None and now >= idle:
            assert self.max_event_time is not None and self._last_event_wall is not None
            base = self.max_event_time - et.max_out_of_orderness
            target = base + (now - self._last_event_wall)
            self._advance(target, to_micros(target), res)
        return res

    def end_of_input(self, res: GroupOutput | None = None) -> GroupOutput:
        """Close every window (watermark to the end of time), then ``on_eof`` per key."""
        if res is None:
            res = GroupOutput()
        if self.eof_done:  # a resumed run of a finished input must not emit twice
            return res
        self.eof_done = True
        self._advance(END_OF_TIME, END_US, res)
        on_eof, ctx, spec = self.spec.processor.on_eof, self.ctx, self.spec
        ctx._out, ctx._dead, ctx._fail = res.out, res.dead, spec.fail
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
        if self._store is not None:
            data = self._store.snapshot(
                self.backend, self.timers.entries(), self.watermark, self.max_event_time,
                self.eof_done, tracking=self._tracking,
            )
            if self._store.writes_deltas and not self._tracking:
                self.backend.track_changes()
                self._tracking = True
                # The context's state bound the untracked accessors: bind the tracking ones.
                self.ctx.state = ValueState(self.ctx, self.backend)
            return data
        from flowlib.engine._snapshots import encode_snapshot

        return encode_snapshot(
            s.step, s.key_type, s.state_type, self.backend.snapshot(), self.timers.entries(),
            self.watermark, self.max_event_time, self.eof_done,
        )

def late_as_dead(late: list[Late[Any, Any]]) -> list[DeadLetter]:
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
