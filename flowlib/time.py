"""Event time: where a stream's timestamps come from, timers, and late events.

flowlib keeps one watermark per key group (bytewax has no global watermark)::

    watermark = max(event time seen by the group) - max_out_of_orderness

It advances after each event the group processes (never backwards), in the order events arrive
at the group, so it depends only on the input's order, not on batching, worker count or timing.
An event-time timer set for ``t`` fires as soon as ``watermark >= t``, possibly between two
events of one batch; a timer set behind the watermark fires right after the batch. When
``idle_timeout`` is set and the group has seen no event for that long (processing time), the
watermark also advances with processing time, to
``max seen - max_out_of_orderness + (now - wall time of the last event)``.
At the end of a bounded input it jumps to the end of time, so every event-time timer fires and
every window closes. An event whose time is strictly before ``watermark - allowed_lateness`` when
it arrives is late: it goes to the step's ``late`` output (or, when no step reads that, to the
dead letters), never to the processor. So a window ``[start, end)`` whose timer fired at
``watermark >= end`` can only be updated by events no older than ``watermark - allowed_lateness``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Generic, Literal, TypeVar

__all__ = [
    "END_OF_TIME",
    "EPOCH",
    "EventTime",
    "Late",
    "Timer",
    "TimerKind",
]

T = TypeVar("T")
K = TypeVar("K")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
END_OF_TIME = datetime.max.replace(tzinfo=UTC)
"""The watermark after the end of a bounded input."""

TimerKind = Literal["event", "processing"]


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
    """Declares a stream's event time: a function (or field name) giving a tz-aware datetime.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Reading:
    ...     at: datetime
    >>> et = EventTime.of("at", max_out_of_orderness=timedelta(seconds=5))
    >>> et.timestamp(Reading(EPOCH))
    datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """

    timestamp: Callable[[T], datetime]
    max_out_of_orderness: timedelta = timedelta(0)
    allowed_lateness: timedelta = timedelta(0)
    idle_timeout: timedelta | None = None
    field: str | None = None

    @classmethod
    def of(
        cls,
        timestamp: Callable[[T], datetime] | str,
        *,
        max_out_of_orderness: timedelta = timedelta(0),
        allowed_lateness: timedelta = timedelta(0),
        idle_timeout: timedelta | None = None,
    ) -> EventTime[T]:
        """From a function, or the name of a field holding the event time."""
        if isinstance(timestamp, str):
            return cls(
                attrgetter(timestamp), max_out_of_orderness, allowed_lateness, idle_timeout,
                timestamp,
            )
        return cls(timestamp, max_out_of_orderness, allowed_lateness, idle_timeout)
