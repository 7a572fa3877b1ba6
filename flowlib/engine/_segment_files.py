"""The files of incremental checkpoints: where they live, how they are written, and what
bytewax's store says still lists them (what garbage collection may not delete)."""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

__all__ = ["FILES", "STATE_DIR", "OpenFiles", "step_dir", "stored_snapshots"]

STATE_DIR = "flowlib-state"
"""The directory of incremental checkpoint files inside a recovery directory."""


def step_dir(step: str) -> str:
    """The directory name of ``step``'s files (step ids may hold any character)."""
    return quote(step, safe="")


class OpenFiles:
    """Delta files kept open between epochs (opening a file per epoch is a good part of an
    incremental checkpoint's cost), least recently used closed beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()  # the workers of a process are threads
        self._written = threading.local()

    def write(self, path: str, flags: int, data: bytes, *, keep: bool, fsync: bool) -> None:
        """Write all of ``data`` to ``path`` (opened with ``flags`` unless kept open)."""
        with self._lock:
            fd = self._fds.pop(path, None)
        if fd is None:
            fd = os.open(path, flags, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._written.n = getattr(self._written, "n", 0) + len(data)
            if fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        if not keep:
            os.close(fd)
            return
        with self._lock:
            self._fds[path] = fd
            old = self._fds.popitem(last=False)[1] if len(self._fds) > self._limit else None
        if old is not None:
            os.close(old)

    def written_by_this_thread(self) -> int:
        """Bytes this thread has written through :meth:`write` (a checkpoint's size)."""
        n: int = getattr(self._written, "n", 0)
        return n

    def forget(self, path: str) -> None:
        """Close ``path`` if it is kept open (before deleting it)."""
        with self._lock:
            fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)


FILES = OpenFiles(256)


def stored_snapshots(root: Path, step_id: str, group: str | None = None) -> list[bytes] | None:
    """Every snapshot bytewax stores for the bytewax step ``step_id`` (for one key group, or
    all), in any partition of the recovery directory ``root``, any epoch, committed or not;
    ``None`` when a partition cannot be read right now."""
    out: list[bytes] = []
    query = "SELECT ser_change FROM snaps WHERE step_id = ?"
    args: tuple[str, ...] = (step_id,)
    if group is not None:
        query += " AND state_key = ?"
        args = (step_id, group)
    for part in sorted(root.glob("part-*.sqlite3")):
        try:
            db = sqlite3.connect(part, timeout=5)
            try:
                rows = db.execute(query, args).fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            return None
        for (blob,) in rows:
            if blob is not None:
                data = pickle.loads(blob)  # bytewax's own framing of our bytes
                if isinstance(data, bytes):
                    out.append(data)
    return out
