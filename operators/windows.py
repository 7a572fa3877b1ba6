"""Event-time windows over keyed streams: tumbling, sliding (hopping) and session windows.

Each operator is a keyed :class:`~flowlib.processor.Processor` that folds every event into the
windows it belongs to with an :class:`~operators.aggregations.Aggregate`, and emits one
:class:`WindowResult` per key and window when the key group's watermark closes the window::

    stream = flow.source(JsonLinesSource("readings.jsonl", Reading)).with_event_time(
        "at", max_out_of_orderness=timedelta(seconds=5), allowed_lateness=timedelta(minutes=1)
    )
    per_minute = stream.key_by(lambda r: r.sensor).process(
        TumblingWindows(timedelta(minutes=1), Mean(lambda r: r.value))
    )                                                   # Stream[WindowResult[str, float]]

Semantics (see :mod:`flowlib.time` for how the watermark moves):

- Windows are half-open, ``[start, end)``: an event at exactly ``end`` belongs to the next
  window. Times are handled in whole microseconds since the epoch.
- A window fires (its result is emitted) when the watermark reaches its ``end``
  (``watermark >= end``), through an event-time timer at ``end``. At the end of a bounded input
  the watermark jumps to the end of time, so every window fires.
- After firing, the window's accumulator is kept until ``watermark >= end + allowed_lateness``
  (a second timer). An event that arrives meanwhile (it is not late: only events behind
  ``watermark - allowed_lateness`` go to the late output) updates the window, and the updated
  result is emitted at once with ``update=True``. Consumers that keep the latest
  result per ``(key, start)`` see the corrected value; consumers that append see both.
- A key's state is deleted when it has no window left, so idle keys cost nothing.

The fixed windows rely on one engine guarantee: every event-time timer at or before
``ctx.watermark`` has fired before an event is processed under that watermark (timers fire as
soon as the watermark advances). A window whose ``end`` is at or before the watermark has
therefore already fired, which is how an update is told apart without storing a flag.
"""

from __future__ import annotations

import bisect
import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from operator import le
from types import GenericAlias
from typing import Any, Generic, cast

from typing_extensions import TypeVar, override

from flowlib.codecs import codec_for
from flowlib.errors import FlowlibError
from flowlib.processor import Context, Processor
from flowlib.time import END_OF_TIME, EPOCH, Timer, from_micros, to_micros
from operators.aggregations import Aggregate

__all__ = ["Session", "SessionWindows", "SlidingWindows", "TumblingWindows", "WindowResult"]

K = TypeVar("K")
# The operators' key type is unsolvable until the operator meets a keyed stream; with a default
# an operator built apart from ``.process(...)`` (``op = TumblingWindows(...)``) needs no
# annotation. Their type parameters mirror Aggregate[In, Acc, Out], then the key.
Key = TypeVar("Key", default=Any)
In = TypeVar("In")
Acc = TypeVar("Acc")
Out = TypeVar("Out")

_US = timedelta(microseconds=1)
_END_US = to_micros(END_OF_TIME)
_NO_WATERMARK = -(2**63)  # below every event time: nothing has fired yet
_MISSING: Any = object()
_DATETIMES_KEPT = 4096


def _event_us(ctx: Context[Any, Any, Any], op: object) -> int:
    if ctx.event_time is None:
        msg = (
            f"{type(op).__name__} needs event time: declare it on the stream before key_by, "
            "e.g. stream.with_event_time('at')"
        )
        raise FlowlibError(msg)
    return to_micros(ctx.event_time)


def _watermark_us(ctx: Context[Any, Any, Any]) -> int:
    wm = ctx.watermark_us  # the engine sets it with the datetime: no conversion here
    return _NO_WATERMARK if wm is None else wm


def _acc_type(aggregate: Aggregate[Any, Any, Any]) -> object:
    acc_type = getattr(aggregate, "acc_type", None)
    if acc_type is None:
        msg = (
            f"{type(aggregate).__name__} has no acc_type: set it to the annotation of its "
            "accumulator (checkpoints need it)"
        )
        raise TypeError(msg)
    return acc_type


def _checked(state_type: object) -> object:
    codec_for(state_type)  # refuse, when the flow is built, state that cannot be checkpointed
    return state_type


@dataclass(frozen=True, slots=True)
class WindowResult(Generic[K, Out]):
    """The result of one window of one key.

    ``update`` is False for a window's first result and True for a result that replaces an
    earlier one: an event within the allowed lateness changed a window that had already fired
    (for sessions: that merged with a session that had already fired).

    >>> r = WindowResult("sensor-1", EPOCH, EPOCH + timedelta(minutes=1), 21.5)
    >>> r.key, r.end.minute, r.value, r.update
    ('sensor-1', 1, 21.5, False)
    """

    key: K
    start: datetime
    end: datetime
    value: Out
    update: bool = False


# The state type argument is Any: the engine reads it from the class's type arguments and would
# take ``dict[int, Acc]``, with Acc unbound, over the exact ``state_type`` set in ``__init__``.
# The hooks still annotate their context with the precise state type.
class _FixedWindows(Processor[In, WindowResult[Key, Out], Key, Any], Generic[In, Acc, Out, Key]):
    """Windows at fixed, aligned times; state per key: window start (us) -> accumulator."""

    def __init__(
        self, length: timedelta, aggregate: Aggregate[In, Acc, Out], align_to: datetime
    ) -> None:
        if length <= timedelta(0):
            msg = f"window length must be positive, got {length}"
            raise ValueError(msg)
        if align_to.tzinfo is None:
            msg = "align_to must be timezone-aware (event times are)"
            raise ValueError(msg)
        self.length = length
        self.aggregate = aggregate
        self.align_to = align_to
        self._length_us = length // _US
        self._every_us = self._length_us  # sliding windows hop by less
        # Windows start and end only at multiples of this (from align_to).
        self._bucket_us = self._length_us
        self._align_us = to_micros(align_to)
        self.state_type = _checked(GenericAlias(dict, (int, _acc_type(aggregate))))
        # Window bounds as datetimes (timers, results): every key shares the same few, and
        # building a tz-aware datetime costs ~0.5 us.
        self._datetimes: dict[int, datetime] = {}

    def _datetime(self, us: int) -> datetime:
        at = self._datetimes.get(us)
        if at is None:
            if len(self._datetimes) >= _DATETIMES_KEPT:
                self._datetimes.clear()
            at = self._datetimes[us] = from_micros(us)
        return at

    @abstractmethod
    def _starts(self, t: int) -> range:
        """Starts (us) of the windows holding an event at ``t`` (us), ascending."""

    def windows_of(self, t: datetime) -> list[tuple[datetime, datetime]]:
        """The ``(start, end)`` of every window an event at ``t`` belongs to."""
        length = self._length_us
        return [(from_micros(s), from_micros(s + length)) for s in self._starts(to_micros(t))]

    def _result(self, key: Key, start: int, acc: Acc, update: bool) -> WindowResult[Key, Out]:
        return WindowResult(
            key, self._datetime(start), self._datetime(start + self._length_us),
            self.aggregate.result(acc), update,
        )

    @override
    def process(self, ctx: Context[Key, dict[int, Acc], WindowResult[Key, Out]], event: In) -> None:
        t = _event_us(ctx, self)
        windows = ctx.state.get_optional()
        if windows is None:
            windows = {}
        self._add(ctx, windows, event, t, _watermark_us(ctx), ctx.allowed_lateness // _US)
        ctx.state.set(windows)

    def _add(
        self,
        ctx: Context[Key, dict[int, Acc], WindowResult[Key, Out]],
        windows: dict[int, Acc],
        event: In,
        t: int,
        watermark: int,
        lateness: int,
    ) -> None:
        aggregate = self.aggregate
        for start in self._starts(t):
            end = start + self._length_us
            acc = windows.get(start, _MISSING)
            fresh = acc is _MISSING
            acc = aggregate.add(aggregate.create() if fresh else acc, event)
            windows[start] = acc
            if end <= watermark:
                # Within the allowed lateness, after the window fired (or, if it is new, after
                # it would have): emit now rather than wait for a timer that already passed.
                ctx.emit(self._result(ctx.key, start, acc, update=not fresh))
            elif fresh:
                ctx.timers.at_event_time(self._datetime(end))
            if fresh and lateness:
                ctx.timers.at_event_time(self._datetime(end + lateness))

    @override
    def process_batch(
        self,
        ctx: Context[Key, dict[int, Acc], WindowResult[Key, Out]],
        events: Sequence[In],
        times: Sequence[int] | None,
    ) -> None:
        """A key's run at once: each window's slice of a time-ordered run is folded with
        :meth:`~operators.aggregations.Aggregate.add_range`; results equal those of ``process``
        per event."""
        if times is None or ctx.allowed_lateness:
            # No event time (process says what is missing), or updates per late event.
            super().process_batch(ctx, events, times)
            return
        if not times:
            return
        state = ctx.state
        windows = state.get_optional()
        if windows is None:
            windows = {}
        aggregate = self.aggregate
        slices = self._run_slices(times, ctx.times_sorted) if aggregate.atomic_ranges else None
        if slices is None:  # out of time order across windows, or a non-atomic aggregate
            self._add_each(ctx, windows, events, times)
            return
        # Fold every window before storing any: a failure leaves the state as it was (the
        # aggregate is atomic), and the run is redone value by value so that only the failing
        # events dead-letter.
        folded: list[tuple[int, Acc, bool]] = []
        try:
            prepared = aggregate.prepare(events)
            get, create, add_range = windows.get, aggregate.create, aggregate.add_range
            for start, lo, hi in slices:
                acc = get(start, _MISSING)
                if acc is _MISSING:
                    folded.append((start, add_range(create(), prepared, lo, hi), True))
                else:
                    folded.append((start, add_range(acc, prepared, lo, hi), False))
        except Exception:
            self._add_each(ctx, windows, events, times)
            return
        watermark, length = _watermark_us(ctx), self._length_us
        for start, acc, fresh in folded:
            windows[start] = acc
            end = start + length
            if end <= watermark:  # not from the engine: its runs are at or after the watermark
                ctx.emit(self._result(ctx.key, start, acc, update=not fresh))
            elif fresh:
                ctx.timers.at_event_time(self._datetime(end))
        state.set(windows)

    def _run_slices(
        self, times: Sequence[int], ordered: bool
    ) -> list[tuple[int, int, int]] | None:
        """``(start, lo, hi)`` per window holding events of the run: ``times[lo:hi]`` are its
        events; ``None`` when the run cannot be folded by slices (its times go back across a
        window boundary). ``ordered``: the times are known never to decrease."""
        bucket, align = self._bucket_us, self._align_us
        # Comparing the integers costs ~20 ns each (microseconds since the epoch take two
        # digits): a known order saves two passes (min and max) or one (the order check).
        ordered = ordered or all(map(le, times, islice(times, 1, None)))
        low, high = (times[0], times[-1]) if ordered else (min(times), max(times))
        if (high - align) // bucket == (low - align) // bucket:
            # No window starts or ends between the run's first and last times (for tumbling
            # windows: one window): every event is in the same windows, whatever their order.
            n = len(times)
            if bucket == self._length_us:  # tumbling: that one window starts at the bucket
                return [(align + (low - align) // bucket * bucket, 0, n)]
            return [(start, 0, n) for start in self._starts(low)]
        return self._slices(times) if ordered else None

    def _slices(self, times: Sequence[int]) -> list[tuple[int, int, int]]:
        """``(start, lo, hi)`` of every window holding events of ``times`` (ascending):
        ``times[lo:hi]`` are its events."""
        length, every, align = self._length_us, self._every_us, self._align_us
        n = len(times)
        # The earliest aligned start after t - length: the first window holding t.
        start = align + ((times[0] - length - align) // every + 1) * every
        out: list[tuple[int, int, int]] = []
        lo = 0
        while True:
            lo = bisect.bisect_left(times, start, lo)
            if lo == n:
                return out
            if times[lo] >= start + length:  # a gap: jump to the first window of times[lo]
                start = align + ((times[lo] - length - align) // every + 1) * every
                continue
            hi = bisect.bisect_left(times, start + length, lo)
            out.append((start, lo, hi))
            start += every

    def _add_each(
        self,
        ctx: Context[Key, dict[int, Acc], WindowResult[Key, Out]],
        windows: dict[int, Acc],
        events: Sequence[In],
        times: Sequence[int],
    ) -> None:
        watermark, lateness = _watermark_us(ctx), ctx.allowed_lateness // _US
        for event, t in zip(events, times, strict=True):
            try:
                self._add(ctx, windows, event, t, watermark, lateness)
            except Exception as exc:
                ctx.dead_letter(event, exc)
        if windows:
            ctx.state.set(windows)

    @override
    def on_timer(
        self, ctx: Context[Key, dict[int, Acc], WindowResult[Key, Out]], timer: Timer
    ) -> None:
        windows = ctx.state.get_optional()
        if windows is None or timer.kind != "event":
            return
        now = to_micros(timer.time)
        # One timer time may be both a window's end and another window's cleanup time.
        closing = now - self._length_us
        if closing in windows:
            ctx.emit(self._result(ctx.key, closing, windows[closing], update=False))
        keep_after = self._length_us + ctx.allowed_lateness // _US
        if now < _END_US:
            # Every window has a timer at its cleanup time (its end, or end + lateness).
            windows.pop(now - keep_after, None)
        else:
            for start in [s for s in windows if min(s + keep_after, _END_US) <= now]:
                del windows[start]
        if windows:
            ctx.state.set(windows)
        else:
            ctx.state.clear()


class TumblingWindows(_FixedWindows[In, Acc, Out, Key]):
    """Consecutive windows of ``length``, aligned to ``align_to`` (default: the epoch); each
    event belongs to exactly one.

    State per key: ``dict[int, Acc]``, window start in microseconds since the epoch to the
    aggregate's accumulator (Arrow: ``map<int64, Acc>``).

    >>> from operators.aggregations import Count
    >>> minutes = TumblingWindows(timedelta(minutes=1), Count())
    >>> [(s.minute, e.minute) for s, e in minutes.windows_of(EPOCH + timedelta(seconds=60))]
    [(1, 2)]
    >>> minutes.state_type
    dict[int, int]
    """

    def __init__(
        self,
        length: timedelta,
        aggregate: Aggregate[In, Acc, Out],
        *,
        align_to: datetime = EPOCH,
    ) -> None:
        super().__init__(length, aggregate, align_to)

    @override
    def _starts(self, t: int) -> range:
        start = self._align_us + (t - self._align_us) // self._length_us * self._length_us
        return range(start, start + 1)


class SlidingWindows(_FixedWindows[In, Acc, Out, Key]):
    """Windows of ``length`` starting every ``every`` (hopping windows), aligned to
    ``align_to``; an event belongs to ``length / every`` windows (rounded up or down when
    ``length`` is not a multiple of ``every``).

    ``every`` must not exceed ``length``: events between windows would belong to none and be
    dropped. State per key as for :class:`TumblingWindows`.

    >>> from operators.aggregations import Mean
    >>> hop = SlidingWindows(timedelta(minutes=10), timedelta(minutes=5), Mean())
    >>> [(s.minute, e.minute) for s, e in hop.windows_of(EPOCH + timedelta(minutes=7))]
    [(0, 10), (5, 15)]
    >>> hop.state_type
    dict[int, operators.aggregations.MeanAcc]
    """

    def __init__(
        self,
        length: timedelta,
        every: timedelta,
        aggregate: Aggregate[In, Acc, Out],
        *,
        align_to: datetime = EPOCH,
    ) -> None:
        if not timedelta(0) < every <= length:
            msg = f"sliding windows need 0 < every <= length, got every={every}, length={length}"
            raise ValueError(msg)
        super().__init__(length, aggregate, align_to)
        self.every = every
        self._every_us = every // _US
        self._bucket_us = math.gcd(self._every_us, self._length_us)

    @override
    def _starts(self, t: int) -> range:
        every, align = self._every_us, self._align_us
        last = align + (t - align) // every * every
        # The earliest aligned start after t - length: windows starting at or before
        # t - length end at or before t.
        first = align + ((t - self._length_us - align) // every + 1) * every
        return range(first, last + 1, every)


@dataclass(slots=True)
class Session(Generic[Acc]):
    """One open session of a key: first and last event times (microseconds since the epoch),
    the accumulator, and whether a result for it has been emitted."""

    start_us: int
    last_us: int
    acc: Acc
    fired: bool = False


class SessionWindows(Processor[In, WindowResult[Key, Out], Key, Any], Generic[In, Acc, Out, Key]):
    """Sessions per key: runs of events separated by less than ``gap``.

    An event joins every session it is within ``gap`` of (``start - gap < t < last + gap``);
    an event that bridges two sessions merges them (their accumulators with
    ``Aggregate.merge``, the earlier session first). A session's result has ``start`` = its
    first event's time and ``end`` = its last event's time + ``gap``, and it fires when the
    watermark reaches ``end``.

    Late events within the allowed lateness: if they extend or merge sessions that already
    fired, the new session's result has ``update=True``; it is emitted at once if the
    watermark already passed its new ``end``, else when it does. A result replacing a merged
    session carries the merged session's ``start``, so a consumer keeping the latest result
    per ``(key, start)`` may still hold the result of a later session that was absorbed.

    State per key: ``list[Session[Acc]]`` ordered by start (Arrow:
    ``list<struct<start_us: int64, last_us: int64, acc: Acc, fired: bool>>``).

    >>> from operators.aggregations import Count
    >>> visits = SessionWindows(timedelta(minutes=30), Count())
    >>> visits.state_type
    list[operators.windows.Session[int]]
    """

    def __init__(self, gap: timedelta, aggregate: Aggregate[In, Acc, Out]) -> None:
        if gap <= timedelta(0):
            msg = f"session gap must be positive, got {gap}"
            raise ValueError(msg)
        self.gap = gap
        self.aggregate = aggregate
        self._gap_us = gap // _US
        session_type = cast(Any, Session)[_acc_type(aggregate)]
        self.state_type = _checked(GenericAlias(list, (session_type,)))

    def _result(self, key: Key, session: Session[Acc], update: bool) -> WindowResult[Key, Out]:
        return WindowResult(
            key,
            from_micros(session.start_us),
            from_micros(session.last_us + self._gap_us),
            self.aggregate.result(session.acc),
            update,
        )

    def _timer_times(self, session: Session[Acc], lateness: int) -> tuple[int, int]:
        end = session.last_us + self._gap_us
        return min(end, _END_US), min(end + lateness, _END_US)

    @override
    def process(
        self, ctx: Context[Key, list[Session[Acc]], WindowResult[Key, Out]], event: In
    ) -> None:
        t = _event_us(ctx, self)
        watermark = _watermark_us(ctx)
        lateness = ctx.allowed_lateness // _US
        gap = self._gap_us
        aggregate = self.aggregate
        joined: list[Session[Acc]] = []
        sessions: list[Session[Acc]] = []
        for s in ctx.state.get_optional() or []:
            (joined if s.start_us - gap < t < s.last_us + gap else sessions).append(s)
        stale = {time for s in joined for time in self._timer_times(s, lateness)}
        if joined:
            session = joined[0]
            for other in joined[1:]:
                session.acc = aggregate.merge(session.acc, other.acc)
                session.last_us = max(session.last_us, other.last_us)
                session.fired = session.fired or other.fired
            session.start_us = min(session.start_us, t)
            session.last_us = max(session.last_us, t)
        else:
            session = Session(t, t, aggregate.create())
        session.acc = aggregate.add(session.acc, event)
        bisect.insort(sessions, session, key=lambda s: s.start_us)

        fire_at, cleanup_at = self._timer_times(session, lateness)
        if fire_at <= watermark:
            ctx.emit(self._result(ctx.key, session, update=session.fired))
            session.fired = True
        else:
            ctx.timers.at_event_time(from_micros(fire_at))
        ctx.timers.at_event_time(from_micros(cleanup_at))
        # Timers are per key and time, so a time another session still needs must stay.
        stale -= {time for s in sessions for time in self._timer_times(s, lateness)}
        for time in stale:
            ctx.timers.cancel(from_micros(time))
        ctx.state.set(sessions)

    @override
    def on_timer(
        self, ctx: Context[Key, list[Session[Acc]], WindowResult[Key, Out]], timer: Timer
    ) -> None:
        sessions = ctx.state.get_optional()
        if sessions is None or timer.kind != "event":
            return
        now = to_micros(timer.time)
        lateness = ctx.allowed_lateness // _US
        kept: list[Session[Acc]] = []
        for s in sessions:
            fire_at, cleanup_at = self._timer_times(s, lateness)
            if fire_at == now:
                ctx.emit(self._result(ctx.key, s, update=s.fired))
                s.fired = True
            if cleanup_at > now:
                kept.append(s)
        if kept:
            ctx.state.set(kept)
        else:
            ctx.state.clear()
