"""One delta segment per worker and epoch for all the key groups of a step.

bytewax snapshots key groups one at a time. Written per group, a delta costs a table, a frame,
a write and a list of files per group and epoch whatever the size of the change: at 1% of 1M
keys changed over 128 groups that fixed cost was four fifths of an incremental epoch. So the
first group of a step that a worker snapshots in an epoch takes the changes of every group of
the step on that worker that writes deltas, and writes them as one segment; each group's record
lists its slice of it (:attr:`ChainFile.part`). A group whose state changed again after its
changes were taken (bytewax did not snapshot it in that epoch) adds a segment of its own.

Files: ``DIR/flowlib-state/<step>/shared/<token>-<n>.deltas``, appended to every epoch; a new
``n`` every ``ROTATE_EPOCHS`` segments. ``token`` is random per worker and run; while the
worker runs it holds an exclusive ``flock`` on ``<token>.lock``, which the OS releases however
the process ends.

Garbage collection, whenever a worker starts a file: another file is deleted when no snapshot
bytewax stores for the step lists it, and either this worker wrote it and none of its groups
may still list it (in its chain, a slice not yet recorded, or a record bytewax may not have
stored yet), or its writer is gone (its lock is free). Restoring reads each shared segment
once per process (see ``_snapshots._shared_segment``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from flowlib.codecs import Codec
from flowlib.engine._segment_files import FILES, STATE_DIR, step_dir, stored_snapshots
from flowlib.engine._snapshots import (
    ChainFile,
    IncrementalEncoder,
    forget_shared_segments,
    record_files,
)
from flowlib.errors import FlowlibError
from flowlib.state import StateBackend

__all__ = ["ROTATE_EPOCHS", "SHARED_DIR", "Member", "SharedDeltas", "shared_deltas"]

SHARED_DIR = "shared"
"""The directory of shared segments inside a step's directory (key group ids are numbers)."""

ROTATE_EPOCHS = 16
"""Segments per shared file: a file can go once every group listing it compacted."""


class Member(Protocol):
    """What :class:`SharedDeltas` needs of a key group's store (``GroupStore``)."""

    def takes_shared(self) -> StateBackend[Any, Any] | None:
        """The group's backend when the group's changes may go into a shared segment now."""

    def give_part(self, part: ChainFile) -> None:
        """The group's slice of the shared segment just written."""

    def referenced(self) -> set[str]:
        """The files the group's chains (current, not yet recorded, not yet stored) list."""


class SharedDeltas:
    """The shared segments of one step on one worker (one per thread: workers are threads)."""

    def __init__(
        self,
        root: Path,
        step_id: str,
        step: str,
        encoder: IncrementalEncoder,
        key_codec: Codec[Any],
        value_codec: Codec[Any],
        fsync: bool,
    ) -> None:
        self._root = root
        self._step_id = step_id  # bytewax's "<flow>.<step>"
        self._step = step
        self._encoder = encoder
        self._key_codec = key_codec
        self._value_codec = value_codec
        self._fsync = fsync
        self._members: weakref.WeakSet[Any] = weakref.WeakSet()
        self._dir = f"{STATE_DIR}/{step_dir(step)}/{SHARED_DIR}"
        self._token = secrets.token_hex(4)
        self._file: str | None = None  # the file appended to, relative to root
        self._size = 0
        self._segments = 0  # in the current file
        self._number = 0
        self._lock_fd: int | None = None
        self._restored = False

    def join(self, member: Member) -> None:
        self._members.add(member)

    def write_round(self) -> None:
        """Take the changes of every member that may share and write them as one segment;
        each gets its part. Members with nothing to write get none."""
        import pyarrow as pa

        if not self._restored:  # every group of the run restored before its first snapshot
            forget_shared_segments()
            self._restored = True
        keys: list[Any] = []
        values: list[Any] = []
        deleted: list[Any] = []
        slices: list[tuple[Member, int, int, int, int]] = []
        for member in list(self._members):
            backend = member.takes_shared()
            if backend is None:
                continue
            k, v, d = backend.take_change_lists()
            if not k and not d:
                continue
            rs, ds = len(keys), len(deleted)
            keys += k
            values += v
            deleted += d
            slices.append((member, rs, len(keys), ds, len(deleted)))
        if not slices:
            return
        rows = pa.Table.from_arrays(
            [self._key_codec.to_arrow(keys), self._value_codec.to_arrow(values)],
            schema=self._encoder.schema,
        )
        data, crc = self._encoder.segment(rows, self._key_codec.to_arrow(deleted))
        path, offset = self._append(data)
        for member, rs, re, ds, de in slices:
            member.give_part(ChainFile(path, offset, len(data), crc, re - rs + de - ds,
                                       (rs, re, ds, de)))

    def _append(self, data: bytes) -> tuple[str, int]:
        if self._file is None or self._segments >= ROTATE_EPOCHS:
            self._start_file()
        assert self._file is not None
        offset = self._size
        FILES.write(os.path.join(self._root, self._file), os.O_WRONLY | os.O_APPEND, data,
                    keep=True, fsync=self._fsync)
        self._size += len(data)
        self._segments += 1
        return self._file, offset

    def _start_file(self) -> None:
        directory = self._root / self._dir
        if self._lock_fd is None:
            os.makedirs(directory, exist_ok=True)
            self._lock_fd = _hold_lock(directory / f"{self._token}.lock")
            if self._lock_fd is not None:
                weakref.finalize(self, os.close, self._lock_fd)
        old = self._file
        self._number += 1
        self._file = f"{self._dir}/{self._token}-{self._number:06d}.deltas"
        # O_EXCL: a name is never reused, nor a file overwritten
        fd = os.open(self._root / self._file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        if self._fsync:
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._size = self._segments = 0
        if old is not None:
            FILES.forget(os.path.join(self._root, old))
        self.collect()  # at the first file too: what a crashed run left

    def collect(self) -> None:
        """Delete the shared files of the step that nothing may read any more."""
        directory = self._root / self._dir
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return
        files = [n for n in names
                 if n.endswith(".deltas") and f"{self._dir}/{n}" != self._file]
        if not files:
            return
        stored = self._stored_paths()
        if stored is None:  # bytewax's store unreadable now: keep everything, retry later
            return
        mine: set[str] = set()
        for member in list(self._members):
            mine |= member.referenced()
        gone_writers: dict[str, bool] = {}
        for name in files:
            rel = f"{self._dir}/{name}"
            if rel in stored:
                continue
            token = name.split("-", 1)[0]
            if token == self._token:
                if rel in mine:
                    continue
            else:
                if token not in gone_writers:
                    gone_writers[token] = _writer_gone(directory / f"{token}.lock")
                if not gone_writers[token]:
                    continue
            FILES.forget(os.path.join(self._root, rel))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)
        left = {n.split("-", 1)[0] for n in os.listdir(directory) if n.endswith(".deltas")}
        for token, gone in gone_writers.items():
            if gone and token not in left:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / f"{token}.lock")

    def _stored_paths(self) -> set[str] | None:
        stored = stored_snapshots(self._root, self._step_id)
        if stored is None:
            return None
        paths: set[str] = set()
        for data in stored:
            try:
                paths |= record_files(data, self._step)[0]
            except FlowlibError:
                return None  # a damaged row: keep the files, the resume will say what is wrong
        return paths


def _hold_lock(path: Path) -> int | None:
    """Open and lock ``path`` for this process's life; ``None`` where locks are unavailable."""
    if sys.platform == "win32":  # no flock: writers cannot be told gone; their files are kept
        return None
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the token is new: nobody else holds it
    return fd


def _writer_gone(lock: Path) -> bool:
    """Whether the worker that holds ``lock`` has ended (its lock is free)."""
    if sys.platform == "win32":
        return False
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return True  # written before locks, or its lock went: nothing holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases a lock this call took
    return True


_ALL: weakref.WeakValueDictionary[tuple[Path, str, int], SharedDeltas] = (
    weakref.WeakValueDictionary()
)
_ALL_LOCK = threading.Lock()


def shared_deltas(root: Path, step_id: str, make: Callable[[], SharedDeltas]) -> SharedDeltas:
    """The shared segments of step ``step_id`` under ``root`` for the calling worker (thread),
    made by ``make`` the first time; the worker's groups hold it."""
    key = (root, step_id, threading.get_ident())
    with _ALL_LOCK:
        found = _ALL.get(key)
        if found is None:
            found = _ALL[key] = make()
        return found
