"""Event time: where a stream's timestamps come from, timers, and late events.

flowlib keeps one watermark per key group (bytewax has no global watermark)::

    watermark = max(event time of the on-time events seen by the group) - max_out_of_orderness

It never moves backwards. An event whose time is strictly before ``watermark -
allowed_lateness`` *in force when it arrives* (the watermark after every earlier event of the
group, in arrival order) is late: it goes to the step's ``late`` output (or, when no step reads
that, to the dead letters), never to the processor. Every other event counts towards the
watermark, also when the processor then fails on it. Lateness therefore depends only on the
input's order, not on batching, worker count or timing.

When an event-time timer fires: as soon as ``watermark >= t``. On the general path (any
processor, or ``allowed_lateness > 0``) the watermark advances after each event and timers may
fire between two events of one batch; a timer set behind the watermark fires right after the
batch. A processor that overrides :meth:`~flowlib.processor.Processor.process_batch` on a
stream with ``allowed_lateness == 0`` gets each key's on-time events of an upstream batch at
once, under the watermark in force before the batch, and the timers that become due fire after
the batch. That changes no window result: an event that arrives after a window's timer would
have fired is behind the watermark, hence late, on both paths.

When ``idle_timeout`` is set and the group has seen no event for that long (processing time),
the watermark also advances with processing time, to
``max seen - max_out_of_orderness + (now - wall time of the last event)``.
At the end of a bounded input it jumps to the end of time, so every event-time timer fires and
every window closes. So a window ``[start, end)`` whose timer fired at ``watermark >= end`` can
only be updated by events no older than ``watermark - allowed_lateness``.

Event times are tz-aware datetimes, or integers (``unit="ms"``: milliseconds since the epoch,
also ``"s"`` and ``"us"``), which spare building a datetime per event; the engine works in whole
microseconds since the epoch either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter, index
from typing import Generic, Literal, TypeVar, cast

__all__ = [
    "END_OF_TIME",
    "EPOCH",
    "EventTime",
    "Late",
    "TimeUnit",
    "Timer",
    "TimerKind",
    "from_micros",
    "to_micros",
]

T = TypeVar("T")
K = TypeVar("K")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
END_OF_TIME = datetime.max.replace(tzinfo=UTC)
"""The watermark after the end of a bounded input."""

TimerKind = Literal["event", "processing"]

TimeUnit = Literal["s", "ms", "us"]
"""The unit of integer event times, counted from the epoch (1970-01-01T00:00:00Z)."""

MICROS_PER_UNIT: dict[TimeUnit, int] = {"s": 1_000_000, "ms": 1_000, "us": 1}

_MICROSECOND = timedelta(microseconds=1)
_END_MICROS = (END_OF_TIME - EPOCH) // _MICROSECOND


def to_micros(t: datetime) -> int:
    """``t`` (tz-aware) in whole microseconds since the epoch: the integer form window
    operators and the engine's batch path compute with.

    >>> to_micros(EPOCH + timedelta(seconds=1, microseconds=5))
    1000005
    """
    return (t - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    """The datetime ``us`` microseconds after the epoch; at most :data:`END_OF_TIME`.

    >>> from_micros(1_000_005) == EPOCH + timedelta(seconds=1, microseconds=5)
    True
    >>> from_micros(2**62) == END_OF_TIME
    True
    """
    return END_OF_TIME if us >= _END_MICROS else EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer that fired: when it was set for, and on which clock."""

    time: datetime
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class Late(Generic[K, T]):
    """An event that arrived behind its key group's watermark beyond the allowed lateness."""

    step: str
    key: K
    event: T
    event_time: datetime
    watermark: datetime


@dataclass(frozen=True)
class EventTime(Generic[T]):
    """Declares a stream's event time: a function (or field name) giving a tz-aware datetime,
    or, with ``unit``, an integer count of that unit since the epoch.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Reading:
    ...     at: datetime
    ...     ts_ms: int
    >>> et = EventTime.of("at", max_out_of_orderness=timedelta(seconds=5))
    >>> et.timestamp(Reading(EPOCH, 0))
    datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> EventTime.of("ts_ms", unit="ms").datetime_of(Reading(EPOCH, 1500))
    datetime.datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=datetime.timezone.utc)
    """

    timestamp: Callable[[T], datetime] | Callable[[T], int]
    max_out_of_orderness: timedelta = timedelta(0)
    allowed_lateness: timedelta = timedelta(0)
    idle_timeout: timedelta | None = None
    field: str | None = None
    unit: TimeUnit | None = None
    """``None``: ``timestamp`` gives datetimes; else it gives integers in this unit."""

    def __post_init__(self) -> None:
        if self.unit is not None and self.unit not in MICROS_PER_UNIT:
            msg = f"event time unit must be one of {sorted(MICROS_PER_UNIT)}, got {self.unit!r}"
            raise ValueError(msg)

    @classmethod
    def of(
        cls,
        timestamp: Callable[[T], datetime] | Callable[[T], int] | str,
        *,
        max_out_of_orderness: timedelta = timedelta(0),
        allowed_lateness: timedelta = timedelta(0),
        idle_timeout: timedelta | None = None,
        unit: TimeUnit | None = None,
    ) -> EventTime[T]:
        """From a function, or the name of a field holding the event time."""
        if isinstance(timestamp, str):
            return cls(
                attrgetter(timestamp), max_out_of_orderness, allowed_lateness, idle_timeout,
                timestamp, unit,
            )
        return cls(timestamp, max_out_of_orderness, allowed_lateness, idle_timeout, None, unit)

    def datetime_of(self, event: T) -> datetime:
        """The event's time as a datetime (integer times converted from ``unit``)."""
        t = self.timestamp(event)
        if self.unit is None or isinstance(t, datetime):
            # A datetime when no unit is declared (else comparing it fails, as it should).
            return cast(datetime, t)
        return EPOCH + timedelta(microseconds=index(t) * MICROS_PER_UNIT[self.unit])
