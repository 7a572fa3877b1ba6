"""Fault injection for crash tests of flows that run as their own process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["CrashAfter"]

A = TypeVar("A")
R = TypeVar("R")

CRASH_EXIT_STATUS = 137
"""The status of a process ended by ``kill -9`` (128 + SIGKILL), which the crash imitates."""


class CrashAfter(Generic[A, R]):
    """Wraps ``fn``; its ``after``-th call ends the process at once, as ``kill -9`` would: no
    cleanup, no last checkpoint, exit status 137. ``after=None`` never crashes.

    For crash tests of a flow script run by ``flowlib run`` (a step's function, e.g. the parse
    function of a source, is a natural place). ``pause_every=N`` sleeps 20 ms every N calls, so
    that checkpoints commit between batches before the crash.

    >>> double = CrashAfter(lambda x: 2 * x, after=None)
    >>> double(21), double.calls
    (42, 1)
    """

    def __init__(self, fn: Callable[[A], R], *, after: int | None, pause_every: int = 0) -> None:
        self.fn = fn
        self.after = after
        self.pause_every = pause_every
        self.calls = 0

    def __call__(self, arg: A) -> R:
        self.calls += 1
        if self.after is not None and self.calls >= self.after:
            os._exit(CRASH_EXIT_STATUS)  # no atexit handlers, no flushing: as kill -9
        if self.pause_every and self.calls % self.pause_every == 0:
            time.sleep(0.02)
        return self.fn(arg)
