"""Processors: the unit of user logic, and the context they see.

A :class:`Processor` consumes events of type ``In`` and emits events of type ``Out`` through its
:class:`Context`. On a keyed stream the context also exposes the current key (``K``) and that key's
state (``V``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic

from typing_extensions import TypeVar

from flowlib.errors import FlowlibError
from flowlib.state import StateBackend

__all__ = ["Context", "Processor", "ValueState"]

In = TypeVar("In")
Out = TypeVar("Out")
K = TypeVar("K", default=None)
V = TypeVar("V", default=None)
O = TypeVar("O")  # noqa: E741
CK = TypeVar("CK")
CV = TypeVar("CV")


class ValueState(Generic[CV]):
    """The state of the context's current key."""

    __slots__ = ("_backend", "_ctx", "_get", "_put")

    def __init__(self, ctx: Context[Any, CV, Any], backend: StateBackend[Any, CV] | None) -> None:
        self._ctx = ctx
        self._backend = backend
        if backend is None:
            self._get: Callable[[Any], CV | None] = self._no_state
            self._put: Callable[[Any, CV], None] = self._no_state
        else:
            # Bound once: this is the per-event path.
            self._get, self._put = backend.accessors()

    def _no_state(self, *_: object) -> Any:
        msg = (
            f"step {self._ctx.step!r} has no keyed state: key the stream first "
            "(stream.key_by(...).process(...))"
        )
        raise FlowlibError(msg)

    def get(self, default: CV) -> CV:
        """The current key's value, or ``default`` when it has none yet."""
        value = self._get(self._ctx.key)
        return default if value is None else value

    def get_optional(self) -> CV | None:
        """The current key's value, or ``None``."""
        return self._get(self._ctx.key)

    def set(self, value: CV) -> None:
        """Store ``value`` for the current key."""
        self._put(self._ctx.key, value)

    def clear(self) -> None:
        """Forget the current key's state."""
        if self._backend is None:
            self._no_state()
        else:
            self._backend.delete(self._ctx.key)


class Context(Generic[CK, CV, O]):
    """What a processor sees while it handles one event.

    The engine reuses one context per key group and rebinds ``key`` before each call, so a
    processor must not keep a context (or its ``state``) beyond the call it was given in.
    """

    __slots__ = ("_out", "key", "state", "step")

    def __init__(self, step: str, backend: StateBackend[CK, CV] | None) -> None:
        self.step = step
        self._out: list[O] = []
        self.key: CK = None  # type: ignore[assignment]  # bound by the engine before every call
        self.state: ValueState[CV] = ValueState(self, backend)

    def emit(self, value: O) -> None:
        """Send ``value`` downstream."""
        self._out.append(value)


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

    def on_eof(self, ctx: Context[K, V, Out]) -> None:  # optional hook
        """Called at the end of a bounded input, once per key that has state (``ctx.key``)."""
