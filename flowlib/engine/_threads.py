"""Keeping a Python thread state on timely's worker threads for the whole run.

With more than one worker (``-w N``, or a cluster: every ``-p N`` and ``-a/-i`` process), bytewax
runs each worker on a thread started by timely, not by Python. Every time such a thread enters
Python (each batch pickled, unpickled, routed or handed to a step; tens of thousands of times a
run), ``PyGILState_Ensure`` creates a fresh thread state and the matching release destroys it
again: an allocation, a memory map for its frame stack (``mmap``/``munmap``) and interpreter
bookkeeping, measured at about 1.4 s of CPU per 1M events in a ``-p 2`` run of log_agg.

Taking one extra, never released reference to the thread state the first time the thread runs
flowlib code makes every later entry reuse it. The state lives until the interpreter ends:
one small object per worker thread. A thread that Python started (the main thread, a
``threading.Thread``) already owns its state, and the extra reference changes nothing for it.
"""

from __future__ import annotations

import threading
from typing import Final

__all__ = ["keep_thread_state"]

_local: Final = threading.local()  # stored in the thread state itself: lost if that is freed


def keep_thread_state() -> None:
    """Make the calling thread keep its Python thread state from now on (cheap when repeated).

    Call it from code that bytewax runs on a worker thread, e.g. when a source's partitions
    are listed (once per worker, while the dataflow is built).
    """
    if getattr(_local, "kept", False):
        return
    _local.kept = True
    import ctypes  # here: most runs have one worker, on the main thread, and never need it

    # With the GIL held and a current thread state, this only adds a reference to that state,
    # so the release at the end of bytewax's own GIL section no longer frees it.
    ctypes.pythonapi.PyGILState_Ensure()
