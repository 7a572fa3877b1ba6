"""Processors: the unit of user logic, and the context they see.

A :class:`Processor` consumes events of type ``In`` and emits events of type ``Out`` through its
:class:`Context`. On a keyed stream the context also exposes the current key (``K``) and that key's
state (``V``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from flowlib.dead_letter import DeadLetter
from flowlib.errors import FlowlibError
from flowlib.state import StateBackend
from flowlib.time import END_OF_TIME, EPOCH, Timer, TimerKind, from_micros, to_micros

if TYPE_CHECKING:
    from flowlib.timers import TimerTable

__all__ = ["Context", "Processor", "Timers", "ValueState"]

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out")
K = TypeVar("K", default=None)
V = TypeVar("V", default=None)
O = TypeVar("O")  # noqa: E741
CK = TypeVar("CK")
CV = TypeVar("CV")


_NO_KEY = object()
_UNCONVERTED: Any = object()


class ValueState(Generic[CV]):
    """The state of the context's current key."""

    # The value of the key last read or written is remembered: the engine binds one key object
    # for a whole run of that key's events, so an identity check saves a (tuple-)hashing lookup
    # per event. Writes always go through to the backend.
    __slots__ = ("_backend", "_ctx", "_get", "_last_key", "_last_value", "_put")

    def __init__(self, ctx: Context[Any, CV, Any], backend: StateBackend[Any, CV] | None) -> None:
        self._ctx = ctx
        self._backend = backend
        if backend is None:
            self._get: Callable[[Any], CV | None] = self._no_state
            self._put: Callable[[Any, CV], None] = self._no_state
        else:
            # Bound once: this is the per-event path.
            self._get, self._put = backend.accessors()
        self._last_key: object = _NO_KEY
        self._last_value: CV | None = None

    def _no_state(self, *_: object) -> Any:
        msg = (
            f"step {self._ctx.step!r} has no keyed state: key the stream first "
            "(stream.key_by(...).process(...))"
        )
        raise FlowlibError(msg)

    def get(self, default: CV) -> CV:
        """The current key's value, or ``default`` when it has none yet."""
        key = self._ctx.key  # get_optional() inlined: this is the per-event path
        if key is self._last_key:
            value = self._last_value
        else:
            value = self._get(key)
            self._last_key, self._last_value = key, value
        return default if value is None else value

    def get_optional(self) -> CV | None:
        """The current key's value, or ``None``."""
        key = self._ctx.key
        if key is self._last_key:
            return self._last_value
        value = self._get(key)
        self._last_key, self._last_value = key, value
        return value

    def set(self, value: CV) -> None:
        """Store ``value`` for the current key."""
        key = self._ctx.key
        self._put(key, value)
        self._last_key, self._last_value = key, value

    def clear(self) -> None:
        """Forget the current key's state."""
        self._last_key = _NO_KEY
        if self._backend is None:
            self._no_state()
        else:
            self._backend.delete(self._ctx.key)

    def forget_cached(self) -> None:
        """Drop the remembered value (the engine calls this when the backend changes under it)."""
        self._last_key = _NO_KEY


class Timers:
    """Timers of the context's current key; :meth:`Processor.on_timer` is called when they fire.

    Setting a timer that is already set does nothing. Timers are kept in checkpoints.
    """

    __slots__ = ("_ctx", "_table")

    def __init__(self, ctx: Context[Any, Any, Any], table: TimerTable | None) -> None:
        self._ctx = ctx
        self._table = table

    def _required(self) -> TimerTable:
        if self._table is None:
            msg = f"step {self._ctx.step!r} has no timers: timers need a keyed stream"
            raise FlowlibError(msg)
        return self._table

    def at_event_time(self, t: datetime) -> None:
        """Fire when the key group's watermark reaches ``t``."""
        self._required().add(self._ctx.key, t, "event")

    def at_processing_time(self, t: datetime) -> None:
        """Fire when the wall clock reaches ``t``."""
        self._required().add(self._ctx.key, t, "processing")

    def cancel(self, t: datetime, kind: TimerKind = "event") -> None:
        """Forget a timer of the current key; cancelling a missing timer does nothing."""
        self._required().remove(self._ctx.key, t, kind)


class Context(Generic[CK, CV, O]):
    """What a processor sees while it handles one event.

    The engine reuses one context per key group and rebinds ``key`` (and ``event_time``) before
    each call, so a processor must not keep a context (or its ``state``) beyond the call.

    ``watermark`` is the key group's event-time watermark (``None`` before any event and on
    streams without event time), and ``watermark_us`` the same in whole microseconds since the
    epoch (what window operators compare integer event times with); ``event_time`` is the
    current event's time, or ``None`` (also during :meth:`Processor.process_batch`, which gets
    the times as integers). ``times_sorted`` is True while :meth:`Processor.process_batch`
    handles a run whose times the engine knows never decrease (a processor may then skip
    checking their order), else False.
    """

    __slots__ = (
        "_dead", "_fail", "_late", "_now", "_out", "_watermark", "_watermark_us",
        "allowed_lateness", "event_time", "key", "state", "step", "timers", "times_sorted",
    )

    def __init__(
        self,
        step: str,
        backend: StateBackend[CK, CV] | None,
        timers: TimerTable | None = None,
        now: Callable[[], datetime] | None = None,
        allowed_lateness: timedelta = timedelta(0),
    ) -> None:
        self.step = step
        self._out: list[O] = []
        self.key: CK = None  # type: ignore[assignment]  # bound by the engine before every call
        self.state: ValueState[CV] = ValueState(self, backend)
        self.timers = Timers(self, timers)
        self.event_time: datetime | None = None
        self._watermark: datetime | None = None
        self._watermark_us: int | None = None
        self.times_sorted = False
        self.allowed_lateness = allowed_lateness
        self._now = now or _utc_now
        self._dead: list[DeadLetter] = []
        self._fail = False

    @property
    def watermark(self) -> datetime | None:
        """The key group's event-time watermark, or ``None``."""
        wm = self._watermark
        if wm is _UNCONVERTED:  # the engine set only the integer: most batches never read it
            assert self._watermark_us is not None
            wm = self._watermark = from_micros(self._watermark_us)
        return wm

    @watermark.setter
    def watermark(self, watermark: datetime | None) -> None:
        # Harnesses set it; the engine, which has both forms at hand, uses _set_watermark.
        self._watermark = watermark
        self._watermark_us = None if watermark is None else to_micros(watermark)

    @property
    def watermark_us(self) -> int | None:
        """:attr:`watermark` in whole microseconds since the epoch (see
        :func:`flowlib.time.to_micros`), or ``None``."""
        return self._watermark_us

    def _set_watermark(self, watermark: datetime | None, watermark_us: int) -> None:
        """For the engine: ``watermark`` is ``watermark_us`` as a datetime, or ``None`` to
        convert it only when read."""
        self._watermark = _UNCONVERTED if watermark is None else watermark
        self._watermark_us = watermark_us

    def emit(self, value: O) -> None:
        """Send ``value`` downstream."""
        self._out.append(value)

    def dead_letter(self, event: object, error: Exception) -> None:
        """Send ``event`` to the dead letters with ``error``, as if handling it had raised
        ``error`` (under ``on_error="fail"`` this raises ``error``). For
        :meth:`Processor.process_batch`, which must not let one bad event fail its run."""
        if self._fail:
            raise error
        self._dead.append(DeadLetter.from_error(self.step, error, event))

    @property
    def processing_time(self) -> datetime:
        """The wall clock now (a virtual clock under test harnesses)."""
        return self._now()


_END_US = (END_OF_TIME - EPOCH) // timedelta(microseconds=1)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Processor(ABC, Generic[In, Out, K, V]):
    """User logic: handles one event at a time, emits zero or more results.

    ``Processor[In, Out]`` is stateless (its ``K`` and ``V`` are ``None``); a keyed processor
    names its key and state types too, ``Processor[In, Out, K, V]``, so mypy checks them against
    the keyed stream and the engine knows the Arrow schema of its checkpoints before the first
    event.

    >>> class Running(Processor[int, int, str, int]):
    ...     def process(self, ctx: Context[str, int, int], event: int) -> None:
    ...         total = ctx.state.get(0) + event
    ...         ctx.state.set(total)
    ...         ctx.emit(total)

    Raising inside :meth:`process` sends the event to the dead-letter output; the run goes on.
    """

    @abstractmethod
    def process(self, ctx: Context[K, V, Out], event: In) -> None:
        """Handle one event."""

    def process_batch(
        self, ctx: Context[K, V, Out], events: Sequence[In], times: Sequence[int] | None
    ) -> None:
        """Handle a run of events of one key (``ctx.key``), in arrival order, at once.

        ``times`` are the events' times in microseconds since the epoch (``None`` on streams
        without event time). The default calls :meth:`process` per event (with
        ``ctx.event_time`` bound) and sends the events that raise to the dead letters.

        Override it to fold a run faster; the engine then calls it instead of ``process``
        on keyed streams without event time, and on event-time streams with
        ``allowed_lateness == 0``. On those, the run holds only on-time events,
        ``ctx.watermark`` (and ``ctx.watermark_us``) is the watermark before the upstream
        batch (every event-time timer up to it has fired), ``ctx.times_sorted`` says whether
        ``times`` are known never to decrease, and timers that become due during the batch
        fire after it (see :mod:`flowlib.time`). With ``allowed_lateness > 0`` the engine
        keeps calling ``process`` per event. An override reports events it cannot handle with
        :meth:`Context.dead_letter`; an exception escaping it sends the whole run there.
        """
        process = self.process
        if times is None:
            for event in events:
                try:
                    process(ctx, event)
                except Exception as exc:
                    ctx.dead_letter(event, exc)
            return
        for event, t in zip(events, times, strict=True):
            ctx.event_time = END_OF_TIME if t >= _END_US else EPOCH + timedelta(microseconds=t)
            try:
                process(ctx, event)
            except Exception as exc:
                ctx.dead_letter(event, exc)
        ctx.event_time = None

    def on_timer(self, ctx: Context[K, V, Out], timer: Timer) -> None:
        """Called when a timer set through ``ctx.timers`` fires, with ``ctx.key`` bound."""

    def on_eof(self, ctx: Context[K, V, Out]) -> None:  # optional hook
        """Called at the end of a bounded input, once per key that has state (``ctx.key``)."""
