"""Keyed state: the :class:`StateBackend` interface every backend implements.

A backend holds the state of many keys (all keys of one key group). It is created by the engine
from a :data:`StateBackendFactory` and the codecs of ``K`` and ``V``, which fix the Arrow schema of
its snapshots before the first event runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from flowlib.codecs import Codec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["StateBackend", "StateBackendFactory", "snapshot_schema"]

K = TypeVar("K")
V = TypeVar("V")


def snapshot_schema(key_codec: Codec[K], value_codec: Codec[V]) -> pa.Schema:
    """The Arrow schema of a snapshot of state typed ``K -> V``: columns ``key`` and ``value``."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("key", key_codec.arrow_type, nullable=False),
            pa.field("value", value_codec.arrow_type),
        ]
    )


class StateBackend(ABC, Generic[K, V]):
    """Typed key-value state of one key group.

    Implementations must pass ``tests/state_backends/test_conformance.py``.

    Incremental checkpoints need a backend that records which keys changed: one that sets
    :attr:`supports_change_tracking` and implements :meth:`track_changes` and
    :meth:`take_changes` (:meth:`forget_changes` and :meth:`apply_changes` have generic
    defaults).
    """

    supports_change_tracking: ClassVar[bool] = False
    """Whether :meth:`track_changes` / :meth:`take_changes` are implemented."""

    def __init__(self, key_codec: Codec[K], value_codec: Codec[V]) -> None:
        self.key_codec = key_codec
        self.value_codec = value_codec

    @abstractmethod
    def get(self, key: K) -> V | None:
        """The value stored for ``key``, or ``None`` when there is none."""

    @abstractmethod
    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``key``, replacing any earlier value."""

    @abstractmethod
    def delete(self, key: K) -> None:
        """Forget ``key``; deleting a missing key is not an error."""

    @abstractmethod
    def __contains__(self, key: object) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def items(self) -> Iterator[tuple[K, V]]:
        """All ``(key, value)`` pairs, in no particular order."""

    def approximate_len(self) -> int:
        """The number of keys, for metrics: cheap, and safe to call from another thread while
        the step runs. Here ``len(self)``; a backend whose ``len`` does I/O overrides it."""
        return len(self)

    def snapshot(self) -> pa.Table:
        """All state as an Arrow table with the schema of :func:`snapshot_schema`."""
        import pyarrow as pa

        keys: list[K] = []
        values: list[V] = []
        for k, v in self.items():
            keys.append(k)
            values.append(v)
        return pa.Table.from_arrays(
            [self.key_codec.to_arrow(keys), self.value_codec.to_arrow(values)],
            schema=snapshot_schema(self.key_codec, self.value_codec),
        )

    def restore(self, table: pa.Table) -> None:
        """Replace all state with the rows of ``table`` (as written by :meth:`snapshot`)."""
        self.clear()
        keys = self.key_codec.from_arrow(table.column("key"))
        values = self.value_codec.from_arrow(table.column("value"))
        for k, v in zip(keys, values, strict=True):
            self.put(k, v)

    def accessors(self) -> tuple[Callable[[K], V | None], Callable[[K, V], None]]:
        """``(get, put)`` callables for the hot path; a backend may return faster equivalents
        of :meth:`get` and :meth:`put` (e.g. bound methods of its dict)."""
        return self.get, self.put

    def clear(self) -> None:
        """Delete every key."""
        for k in [k for k, _ in self.items()]:
            self.delete(k)

    # --- change tracking (incremental checkpoints) ----------------------------------------

    def track_changes(self) -> None:
        """Start recording the keys that :meth:`put` and :meth:`delete` touch.

        The engine calls it once, when the group starts writing deltas (after :meth:`restore`,
        possibly after :meth:`accessors` was called: the engine then calls :meth:`accessors`
        again). The callables :meth:`accessors` returns from then on must record their writes
        too. A value mutated in place without a ``put`` is not recorded.
        """
        msg = f"{type(self).__name__} does not record changes (no incremental checkpoints)"
        raise NotImplementedError(msg)

    def take_changes(self) -> tuple[pa.Table, list[K]]:
        """What changed since :meth:`track_changes` or the previous call, then forget it.

        Returns the current rows of the keys written (a table with the schema of
        :func:`snapshot_schema`, each key once) and the keys deleted (each once, none of them
        in the table). A key written then deleted is only deleted; deleted then written is
        only written. Deleting a key that was absent may be reported as a deletion.
        """
        msg = f"{type(self).__name__} does not record changes (no incremental checkpoints)"
        raise NotImplementedError(msg)

    def take_change_lists(self) -> tuple[list[K], list[V], list[K]]:
        """:meth:`take_changes` as Python lists: keys written, their values, keys deleted.

        The engine writes the changes of all the key groups of a worker as one segment per
        epoch, from these lists; a backend may override this to skip building a table per
        group (the default converts the one :meth:`take_changes` returns).
        """
        changed, deleted = self.take_changes()
        keys = self.key_codec.from_arrow(changed.column("key"))
        return keys, self.value_codec.from_arrow(changed.column("value")), list(deleted)

    def has_changes(self) -> bool:
        """Whether :meth:`take_changes` would report anything; may say ``True`` when unsure
        (the default), never ``False`` when there are changes."""
        return True

    def forget_changes(self) -> None:
        """Forget the changes recorded so far, as :meth:`take_changes` would, without building
        them (a group that writes a full snapshot instead)."""
        self.take_changes()

    def apply_changes(self, changed: pa.Table, deleted: Sequence[K]) -> None:
        """Apply one :meth:`take_changes` result on top of the current state (restoring an
        incremental checkpoint): upsert the rows of ``changed``, then delete ``deleted``."""
        keys = self.key_codec.from_arrow(changed.column("key"))
        values = self.value_codec.from_arrow(changed.column("value"))
        for k, v in zip(keys, values, strict=True):
            self.put(k, v)
        for k in deleted:
            self.delete(k)


StateBackendFactory = Callable[[Codec[K], Codec[V]], StateBackend[K, V]]
"""Builds one backend per key group from the key and value codecs.

A backend class whose ``__init__`` takes ``(key_codec, value_codec)`` is itself a factory.
"""
