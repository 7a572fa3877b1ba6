"""State backends: where keyed state lives. Every backend passes the same conformance suite."""

from __future__ import annotations

from typing import TYPE_CHECKING

from state_backends.memory import MemoryBackend

if TYPE_CHECKING:
    from state_backends.disk import DiskBackend, DiskOptions

__all__ = ["ALL_BACKENDS", "DiskBackend", "DiskOptions", "MemoryBackend"]

ALL_BACKENDS: tuple[type[MemoryBackend[object, object]], type[DiskBackend[object, object]]]
"""Every backend shipped here; the conformance suite runs over this tuple."""


def __getattr__(name: str) -> object:
    # The on-disk backend (RocksDB) loads on first use: most flows keep state in memory.
    if name in ("DiskBackend", "DiskOptions", "ALL_BACKENDS"):
        from state_backends import disk

        if name == "ALL_BACKENDS":
            return (MemoryBackend, disk.DiskBackend)
        return getattr(disk, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
