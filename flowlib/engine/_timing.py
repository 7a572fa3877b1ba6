"""Event times as integer microseconds since the epoch, for the batch path of event-time steps.

Integers compare and subtract an order of magnitude faster than datetimes, and event times
given as integers (``unit="ms"``) never need a datetime at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from operator import index
from typing import Any

from flowlib.time import END_OF_TIME, EPOCH, MICROS_PER_UNIT, EventTime

__all__ = ["END_US", "MIN_US", "Micros"]

_US = timedelta(microseconds=1)
END_US = (END_OF_TIME - EPOCH) // _US
MIN_US = (datetime.min.replace(tzinfo=EPOCH.tzinfo) - EPOCH) // _US




class Micros:
    """Reads the event time of events as microseconds since the epoch, per ``EventTime``."""

    __slots__ = ("_factor", "_timestamp", "_unit", "step")

    def __init__(self, event_time: EventTime[Any], step: str) -> None:
        self._timestamp: Callable[[Any], Any] = event_time.timestamp
        self._unit = event_time.unit
        self._factor = 1 if event_time.unit is None else MICROS_PER_UNIT[event_time.unit]
        self.step = step

    def all(self, events: list[Any], *, checked: bool = True) -> list[int]:
        """The times of ``events``; raises on the first event whose time is unusable (the
        caller then finds it with :meth:`one`). ``checked=False``: the caller compares the
        times itself (which refuses non-integers) and checks the range."""
        raw = map(self._timestamp, events)
        if self._unit is None:
            times = [(t - EPOCH) // _US for t in raw]
        elif self._factor == 1:
            times = list(map(index, raw))
        else:
            # int.__mul__ gives NotImplemented for anything but an int (a float, a string),
            # which min() and max() below refuse: no separate type check.
            times = list(map(self._factor.__mul__, raw))
        if checked and times and not (min(times) >= MIN_US and max(times) < END_US):
            msg = "event time out of range"
            raise ValueError(msg)
        return times

    def one(self, event: Any) -> int:
        """The time of one event, or an error saying what is wrong with it."""
        t = self._timestamp(event)
        if self._unit is None:
            if not isinstance(t, datetime) or t.tzinfo is None:
                what = "a naive datetime" if isinstance(t, datetime) else type(t).__name__
                msg = (
                    f"event time of step {self.step!r} must be a timezone-aware datetime, got "
                    f"{what} ({t!r}); for integer times declare a unit, e.g. "
                    "with_event_time(..., unit='ms')"
                )
                raise TypeError(msg)
            us = (t - EPOCH) // _US
        else:
            try:
                us = index(t) * self._factor
            except TypeError:
                msg = (
                    f"event time of step {self.step!r} must be an int ({self._unit} since the "
                    f"epoch, as declared), got {type(t).__name__} ({t!r})"
                )
                raise TypeError(msg) from None
        if not MIN_US <= us < END_US:
            msg = (
                f"event time of step {self.step!r} is outside the datetime range: {t!r}"
                + ("" if self._unit is None else f" {self._unit}")
            )
            raise ValueError(msg)
        return us
