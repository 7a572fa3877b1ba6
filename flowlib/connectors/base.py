"""The connector interfaces: partitioned, resumable sources and sinks.

flowlib's own terms, with no engine types: the engine adapts them to bytewax. A source is split
into named partitions; each partition reads batches and reports a resume position, which the
engine checkpoints so a resumed run continues exactly where the checkpoint left off.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from flowlib.dead_letter import DeadLetter

__all__ = ["Sink", "SinkPartition", "Source", "SourcePartition"]

T = TypeVar("T")


class SourcePartition(ABC, Generic[T]):
    """One independently readable part of a source (a file, a byte range, a Kafka partition)."""

    @abstractmethod
    def read_batch(self) -> tuple[list[T], list[DeadLetter]] | None:
        """The next events and the records that failed to decode; ``None`` at end of input."""

    @abstractmethod
    def position(self) -> Any:
        """Where to resume after the batches returned so far (picklable)."""

    def close(self) -> None:  # optional hook
        """Release resources."""

    size_unit: str = "records"
    """What :meth:`size_hint` counts (``"bytes"`` for files)."""

    def size_hint(self) -> tuple[int, int] | None:
        """``(done, total)`` work units (bytes or records) for progress, when known."""
        return None


class Source(ABC, Generic[T]):
    """Declares where events of type ``T`` come from; small, immutable and picklable."""

    item_type: object
    """The runtime type of the events (checked when the flow is built)."""

    @property
    def name_hint(self) -> str:
        """The default step id of a source of this kind (the flow makes it unique)."""
        return type(self).__name__.lower()

    @abstractmethod
    def partitions(self) -> list[str]:
        """Names of all partitions; fixed for the life of a checkpoint."""

    @abstractmethod
    def open(self, partition: str, step: str, resume: Any | None) -> SourcePartition[T]:
        """Open ``partition`` for step ``step``, at ``resume`` (a :meth:`position`) if given."""


class SinkPartition(ABC, Generic[T]):
    """One partition of a sink, written by a single worker."""

    @abstractmethod
    def write_batch(self, items: Sequence[T]) -> None:
        """Write ``items`` durably enough for :meth:`position` to cover them."""

    @abstractmethod
    def position(self) -> Any:
        """Resume state covering everything written so far (picklable)."""

    def close(self) -> None:  # optional hook
        """Flush and release resources."""


class Sink(ABC, Generic[T]):
    """Declares where events of type ``T`` go; small, immutable and picklable."""

    item_type: object
    """The runtime type of the items it accepts (checked when the flow is built)."""

    @abstractmethod
    def partitions(self) -> list[str]:
        """Names of all partitions; items are sent to the one :meth:`partition_of` names."""

    def partition_of(self, item: T) -> int:
        """Index into :meth:`partitions` of the partition that writes ``item``."""
        return 0

    @abstractmethod
    def open(self, partition: str, resume: Any | None) -> SinkPartition[T]:
        """Open ``partition``, resuming at ``resume`` (a :meth:`SinkPartition.position`)."""

    @property
    def name_hint(self) -> str:
        """The default step id of a sink of this kind (the flow makes it unique)."""
        return type(self).__name__.lower()

    def prepare(self) -> None:  # optional hook
        """Called once before a fresh (not resumed) run, by one process, before any write.

        File sinks empty their file here, so a run that writes nothing leaves no stale output.
        """

    @property
    def guarantee(self) -> str:
        """Delivery guarantee across a crash and resume, e.g. ``exactly-once``."""
        return "at-least-once"
