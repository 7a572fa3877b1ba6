"""State backends: where keyed state lives. Every backend passes the same conformance suite."""

from state_backends.memory import MemoryBackend

__all__ = ["ALL_BACKENDS", "MemoryBackend"]

ALL_BACKENDS = (MemoryBackend,)
"""Every backend shipped here; the conformance suite runs over this tuple."""
