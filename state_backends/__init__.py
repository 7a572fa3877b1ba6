"""State backends: where keyed state lives. Every backend passes the same conformance suite."""

from state_backends.disk import DiskBackend, DiskOptions
from state_backends.memory import MemoryBackend

__all__ = ["ALL_BACKENDS", "DiskBackend", "DiskOptions", "MemoryBackend"]

ALL_BACKENDS = (MemoryBackend, DiskBackend)
"""Every backend shipped here; the conformance suite runs over this tuple."""
