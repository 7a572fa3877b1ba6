"""Incremental checkpoints: a key group writes only what changed since its previous snapshot.

bytewax keeps, per (step, key group), the snapshot bytes of recent epochs and resumes each group
from the latest one before the resume epoch, deleting older ones as it commits. Those bytes
must therefore describe the whole state on their own. So the rows live in files of the recovery
directory, and the bytes bytewax stores are a small *record* naming them::

    DIR/flowlib-state/<step>/<group>/<token>-<seq>.base    every row of the group
    DIR/flowlib-state/<step>/<group>/<token>-<seq>.delta   the deltas of the chain, appended:
                                                           each the rows written and keys
                                                           deleted since the previous one

A record lists its chain, base first, with each segment's file, offset, size and CRC-32;
restoring applies them in order (the last write of a key wins, deletions are honoured). A
segment is complete on disk before its record is handed to bytewax; file names are never
reused (``token`` is random per run) and a run appends only to delta files it created, so
what a crashed run wrote after the resume epoch is simply not in the resumed record.

Compaction: once the deltas' bytes pass ``compact_ratio`` times the base's or there are
``max_deltas`` of them (both scaled per group to between a half and all of the limit, so that
the groups of a step do not all compact in the same epoch), the next snapshot writes a new
base. Restoring thus reads at most about ``1 + compact_ratio`` times the state, in at most
``1 + max_deltas`` segments.

Garbage collection, when a group writes a new base: a file is deleted only when no snapshot
row stored by bytewax for that group (any epoch, committed or not, in any partition) lists it,
and no record this run returned that bytewax may not have stored yet lists it. bytewax writes
a partition's rows in epoch order, so the records of this run older than the newest one found
stored were stored too (and those no longer there were deleted by bytewax: nothing can resume
from them).

Groups with fewer than ``inline_rows`` keys keep writing full snapshots into bytewax's store:
for them a file costs more than it saves.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flowlib.codecs import Codec, codec_for
from flowlib.engine._keygroups import group_of
from flowlib.engine._segment_files import FILES, STATE_DIR, step_dir, stored_snapshots
from flowlib.engine._shared_deltas import SharedDeltas, shared_deltas
from flowlib.engine._snapshots import (
    ChainFile,
    IncrementalEncoder,
    chain_entry,
    encode_snapshot,
    record_files,
)
from flowlib.errors import FlowlibError
from flowlib.state import StateBackend, snapshot_schema
from flowlib.time import TimerKind

__all__ = ["Checkpoints", "GroupStore"]


@dataclass(frozen=True)
class Checkpoints:
    """How a run checkpoints its keyed steps (only used with a recovery directory)."""

    root: Path  # the recovery directory
    flow: str  # bytewax's step ids are "<flow>.<step>"
    max_key_groups: int
    incremental: bool = False
    compact_ratio: float = 1.0
    max_deltas: int = 64
    inline_rows: int = 1000
    fsync: bool = False  # see docs/checkpoints.md: kill -9 safe without; power loss needs it


class GroupStore:
    """The incremental checkpoints of one key group (one per :class:`KeyGroup`)."""

    def __init__(
        self,
        cfg: Checkpoints,
        step: str,
        key_type: object,
        value_type: object,
        key_codec: Codec[Any],
    ) -> None:
        self._cfg = cfg
        self._step = step
        self._key_type = key_type
        self._value_type = value_type
        self._group_of = group_of(key_codec, cfg.max_key_groups)
        self._key_codec = key_codec
        value_codec = codec_for(value_type)
        schema = snapshot_schema(key_codec, value_codec)
        self._encoder = IncrementalEncoder(step, key_type, value_type, schema)
        step_id = f"{cfg.flow}.{step}"
        self._shared = shared_deltas(cfg.root, step_id, lambda: SharedDeltas(
            cfg.root, step_id, step, self._encoder, key_codec, value_codec, cfg.fsync,
        ))
        self._shared.join(self)
        # The backend, once the group writes deltas (it then records changes), for the
        # shared segment of an epoch; and this group's part of it, until recorded.
        self._backend: StateBackend[Any, Any] | None = None
        self._part: ChainFile | None = None
        self._token = secrets.token_hex(4)
        self._seq = 0
        self._group: str | None = None
        self._chain: list[ChainFile] = []
        self._entries: list[bytes] = []  # the chain as its record lists it
        self._compact = False
        self._paths: frozenset[str] = frozenset()  # the files of the chain
        self._delta_bytes = 0  # the size of its deltas
        self._log: str | None = None  # the file of its deltas, once this run wrote one
        self._log_size = 0
        self._no_keys = key_codec.to_arrow([])
        # Records returned by this run that bytewax may not have stored yet: (seq, files).
        self._unconfirmed: list[tuple[int, frozenset[str]]] = []

    def resume(
        self, chain: tuple[ChainFile, ...], backend: StateBackend[Any, Any] | None = None
    ) -> None:
        """Continue the chain of the record the group was restored from (``backend``: the
        group's, recording changes from now on)."""
        if chain:
            self._group = chain[0].path.split("/")[-2]
            self._set_chain(list(chain))
            self._check_compaction()
            self._backend = backend

    @property
    def writes_deltas(self) -> bool:
        """Whether the group has a chain: its next snapshot may be a delta."""
        return bool(self._chain)

    def _set_chain(self, chain: list[ChainFile]) -> None:
        self._chain = chain
        self._entries = [chain_entry(f) for f in chain]
        self._paths = frozenset(f.path for f in chain)
        self._delta_bytes = sum(self._bytes_of(f) for f in chain[1:])
        self._compact = False
        self._log = None  # deltas go to a new file of this run
        self._part = None

    def _bytes_of(self, delta: ChainFile) -> int:
        """A delta's bytes, for compaction: a shared segment's are counted in proportion to
        the group's rows, at the base's bytes per row."""
        if delta.part is None:
            return delta.size
        base = self._chain[0]
        return delta.rows * base.size // max(1, base.rows)

    def _append(self, delta: ChainFile) -> None:
        self._chain.append(delta)
        self._entries.append(chain_entry(delta))
        if delta.path not in self._paths:
            self._paths = self._paths | {delta.path}
        self._delta_bytes += self._bytes_of(delta)

    # --- the shared segment of an epoch (see _shared_deltas) -------------------------------

    def takes_shared(self) -> StateBackend[Any, Any] | None:
        """The backend, when the group's changes may go into the next shared segment."""
        b = self._backend
        if (b is None or self._part is not None or self._compact or not self._chain
                or len(b) < self._cfg.inline_rows // 2 or not b.has_changes()):
            return None
        return b

    def give_part(self, part: ChainFile) -> None:
        self._part = part

    def referenced(self) -> set[str]:
        """Every file a chain of this group (recorded or about to be) lists."""
        out = set(self._paths)
        for _, paths in self._unconfirmed:
            out |= paths
        if self._part is not None:
            out.add(self._part.path)
        return out

    # --- writing ---------------------------------------------------------------------------

    def snapshot(
        self,
        backend: StateBackend[Any, Any],
        timers: list[tuple[Any, datetime, TimerKind]],
        watermark: datetime | None,
        max_event_time: datetime | None,
        eof_done: bool,
        *,
        tracking: bool = True,
    ) -> bytes:
        """The bytes for bytewax: a full snapshot (small group) or a record naming a new base
        or the chain with a new delta. ``tracking`` says whether ``backend`` records changes:
        it must once :attr:`writes_deltas` is true."""
        try:
            size = len(backend)
            small = size < self._cfg.inline_rows
            if small and (not self._chain or size < self._cfg.inline_rows // 2):
                if tracking:
                    backend.forget_changes()  # the next delta starts from this full snapshot
                if self._chain:  # shrank: back to full snapshots; the chain's files go
                    self._set_chain([])
                    self._collect()
                return encode_snapshot(
                    self._step, self._key_type, self._value_type, backend.snapshot(), timers,
                    watermark, max_event_time, eof_done,
                )
            self._seq += 1
            if not self._chain or self._compact:
                if tracking:
                    backend.forget_changes()
                table = backend.snapshot()
                if self._group is None:
                    if table.num_rows == 0:
                        return encode_snapshot(
                            self._step, self._key_type, self._value_type, table, timers,
                            watermark, max_event_time, eof_done,
                        )
                    first = self._key_codec.from_arrow(table.column("key").slice(0, 1))[0]
                    self._group = self._group_of(first)
                self._set_chain([self._write("base", table, self._no_keys)])
                self._collect()
            else:
                assert tracking, "a chain grows only with changes recorded"
                if self._part is None:  # the first group of the epoch: one segment for all
                    self._shared.write_round()
                length = len(self._chain)
                if self._part is not None:
                    self._append(self._part)
                    self._part = None
                if backend.has_changes():  # changed after its part was taken: a segment of its own
                    changed, deleted = backend.take_changes()
                    if changed.num_rows or deleted:
                        gone = self._key_codec.to_arrow(deleted) if deleted else self._no_keys
                        self._append(self._write("delta", changed, gone))
                if len(self._chain) == length:
                    return self._record(timers, watermark, max_event_time, eof_done)
                self._check_compaction()
            return self._record(timers, watermark, max_event_time, eof_done)
        finally:
            # From now on the backend records changes iff the group writes deltas (KeyGroup).
            self._backend = backend if self._chain else None

    def _record(
        self,
        timers: list[tuple[Any, datetime, TimerKind]],
        watermark: datetime | None,
        max_event_time: datetime | None,
        eof_done: bool,
    ) -> bytes:
        paths = self._paths
        if self._unconfirmed and self._unconfirmed[-1][1] <= paths:
            # The newer record lists every file of the older one: it protects them alone.
            self._unconfirmed[-1] = (self._seq, paths)
        else:
            self._unconfirmed.append((self._seq, paths))
        return self._encoder.record(
            timers, watermark, max_event_time, eof_done, self._entries,
            f"{self._token}:{self._seq}",
        )

    def _dir(self) -> str:
        assert self._group is not None
        return f"{STATE_DIR}/{step_dir(self._step)}/{self._group}"

    def _write(self, kind: str, rows: Any, deleted: Any) -> ChainFile:
        """Write a base (a new file) or a delta (appended to the chain's delta file, made by
        this run: creating a file costs far more than appending to one)."""
        data, crc = self._encoder.segment(rows, deleted)
        if kind == "delta" and self._log is not None:
            rel, offset = self._log, self._log_size
            flags = os.O_WRONLY | os.O_APPEND
        else:
            rel, offset = f"{self._dir()}/{self._token}-{self._seq:08d}.{kind}", 0
            # O_EXCL: a name is never reused, nor a file overwritten
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            os.makedirs(os.path.join(self._cfg.root, self._dir()), exist_ok=True)
            self._log = rel if kind == "delta" else None
        path = os.path.join(self._cfg.root, rel)
        # The record naming these bytes is handed to bytewax only after this returns (and
        # os.write leaves no bytes in this process: a kill -9 loses none); bytes a crashed run
        # appended after the record a resume uses are never read.
        FILES.write(path, flags, data, keep=kind == "delta", fsync=self._cfg.fsync)
        if kind == "delta":
            self._log_size = offset + len(data)
        if self._cfg.fsync and offset == 0:
            fd = os.open(os.path.dirname(path), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return ChainFile(rel, offset, len(data), crc, rows.num_rows + len(deleted))

    def _check_compaction(self) -> None:
        if len(self._chain) < 2:
            return
        base, deltas = self._chain[0].size, self._delta_bytes
        assert self._group is not None
        # Spread the compactions of a step's groups over epochs: each group compacts at a half
        # to all of the limits, so that a step does not rewrite all its state in one epoch.
        spread = 0.5 + (int(self._group) % 32) / 62
        limit = max(1, round(self._cfg.max_deltas * spread))
        if deltas > self._cfg.compact_ratio * spread * base or len(self._chain) - 1 >= limit:
            self._compact = True

    # --- garbage collection ----------------------------------------------------------------

    def _collect(self) -> None:
        """Delete the files of this group that no snapshot bytewax may resume from lists."""
        if self._group is None:
            return
        directory = self._cfg.root / self._dir()
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return
        current = {f.path for f in self._chain}
        if all(f"{self._dir()}/{name}" in current for name in names):
            return  # nothing could go: spare the read of bytewax's store
        stored = stored_snapshots(self._cfg.root, f"{self._cfg.flow}.{self._step}", self._group)
        if stored is None:  # could not read bytewax's store now: keep everything, retry later
            return
        keep = {f.path for f in self._chain}
        newest_own = 0
        for data in stored:
            try:
                listed, writer = record_files(data, self._step)
            except FlowlibError:
                return  # a damaged row: leave the files alone, the resume will say what is wrong
            keep |= listed
            token, _, seq = writer.partition(":")
            if token == self._token and seq.isdigit():
                newest_own = max(newest_own, int(seq))
        self._unconfirmed = [(s, p) for s, p in self._unconfirmed if s > newest_own]
        for _, paths in self._unconfirmed:
            keep |= paths
        for name in names:
            if f"{self._dir()}/{name}" not in keep:
                FILES.forget(os.path.join(self._cfg.root, f"{self._dir()}/{name}"))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / name)
