"""The contract every StateBackend must meet, run over every backend in ALL_BACKENDS."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib.codecs import codec_for
from flowlib.state import StateBackend, StateBackendFactory, snapshot_schema
from flowlib.testing.strategies import from_type
from state_backends import ALL_BACKENDS, DiskBackend


@dataclass
class Stats:
    count: int
    users: set[str] = field(default_factory=set)
    last: datetime | None = None


backends = pytest.mark.parametrize("factory", ALL_BACKENDS, ids=lambda f: f.__name__)


def make(factory: StateBackendFactory[Any, Any], k: object, v: object) -> StateBackend[Any, Any]:
    return factory(codec_for(k), codec_for(v))


@backends
def test_get_put_delete_contains_len(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, str, int)
    assert s.get("a") is None and "a" not in s and len(s) == 0
    s.put("a", 1)
    s.put("b", 2)
    s.put("a", 3)
    assert s.get("a") == 3 and "a" in s and len(s) == 2
    s.delete("a")
    s.delete("missing")  # not an error
    assert s.get("a") is None and "a" not in s and len(s) == 1
    assert sorted(s.items()) == [("b", 2)]


@backends
def test_items_may_be_mutated_while_iterating(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, int, int)
    for i in range(10):
        s.put(i, i)
    for k, _ in s.items():
        s.delete(k)
    assert len(s) == 0


@backends
def test_snapshot_is_arrow_with_typed_columns(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, tuple[str, str], Stats)
    ts = datetime(2005, 12, 4, 4, 47, tzinfo=UTC)
    s.put(("error", "E3"), Stats(2, {"root", "admin"}, ts))
    s.put(("notice", "E2"), Stats(1))
    table = s.snapshot()
    assert table.schema == snapshot_schema(codec_for(tuple[str, str]), codec_for(Stats))
    assert table.num_rows == 2
    restored = make(factory, tuple[str, str], Stats)
    restored.put(("stale", "E0"), Stats(9))
    restored.restore(table)
    assert dict(restored.items()) == {
        ("error", "E3"): Stats(2, {"root", "admin"}, ts),
        ("notice", "E2"): Stats(1),
    }


@backends
@settings(max_examples=40, deadline=None)
@given(data=st.dictionaries(st.text(max_size=8), st.floats(allow_nan=False), max_size=50))
def test_snapshot_restore_is_identity(
    factory: StateBackendFactory[Any, Any], data: dict[str, float]
) -> None:
    s = make(factory, str, float)
    for k, v in data.items():
        s.put(k, v)
    again = make(factory, str, float)
    again.restore(s.snapshot())
    assert dict(again.items()) == data
    assert len(again) == len(data)


@backends
def test_clear(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, int, str)
    s.put(1, "x")
    s.clear()
    assert len(s) == 0 and list(s.items()) == []


# --- properties that matter once state leaves memory (run over every backend) -----------------


class Level(Enum):
    INFO = "info"
    ERROR = "error"


@dataclass(frozen=True)
class Host:
    name: str
    port: int


@dataclass
class Rich:
    """A value touching every kind of field a backend must store exactly."""

    when: datetime
    amount: Decimal
    ratio: float
    tags: frozenset[str]
    counts: dict[str, int]
    pair: tuple[int, str]
    level: Level
    ident: UUID
    blob: bytes
    day: date | None
    wait: timedelta
    hosts: list[Host]


# DiskBackend with a tiny cache: every test below also runs with values going through the disk.
FACTORIES = [*ALL_BACKENDS, DiskBackend.at(cache_entries=16)]
factories = pytest.mark.parametrize(
    "factory", FACTORIES, ids=lambda f: getattr(f, "__name__", "DiskBackend-cache16")
)


@factories
@settings(max_examples=30, deadline=None)
@given(values=st.lists(from_type(Rich), min_size=1, max_size=40))
def test_values_round_trip_exactly(
    factory: StateBackendFactory[Any, Any], values: list[Rich]
) -> None:
    s = make(factory, int, Rich)
    for i, v in enumerate(values):
        s.put(i, v)
    assert [s.get(i) for i in range(len(values))] == values
    assert dict(s.items()) == dict(enumerate(values))
    again = make(factory, int, Rich)
    again.restore(s.snapshot())
    assert [again.get(i) for i in range(len(values))] == values


@factories
def test_non_finite_floats_round_trip(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, str, float)
    s.put("nan", math.nan)
    s.put("inf", math.inf)
    s.put("-inf", -math.inf)
    for i in range(40):  # beyond a small cache: the values above are read back from disk
        s.put(f"k{i}", float(i))
    assert math.isnan(s.get("nan") or 0.0)
    assert (s.get("inf"), s.get("-inf")) == (math.inf, -math.inf)


@factories
@pytest.mark.parametrize(
    ("key_type", "keys"),
    [
        (str, ["", "é", "日本語", "a\x00b", "🙂", "a" * 1000]),
        (bytes, [b"", b"\x00", b"\xff\xfe", bytes(range(256))]),
        (tuple[str, int], [("a", 1), ("a", 2), ("b", 1), ("", -5)]),
        (Host, [Host("web", 80), Host("web", 443), Host("db", 80)]),
        (int, [0, -1, 2**63 - 1, -(2**63)]),
    ],
    ids=["str", "bytes", "tuple", "dataclass", "int"],
)
def test_keys_of_every_shape(
    factory: StateBackendFactory[Any, Any], key_type: object, keys: list[Any]
) -> None:
    s = make(factory, key_type, int)
    for i, k in enumerate(keys):
        s.put(k, i)
    for i in range(40):  # push the keys above out of a small cache
        s.put(keys[0], i)
    expected = {k: i for i, k in enumerate(keys)} | {keys[0]: 39}
    assert {k: s.get(k) for k in keys} == expected
    assert dict(s.items()) == expected and len(s) == len(keys)
    again = make(factory, key_type, int)
    again.restore(s.snapshot())
    assert dict(again.items()) == expected


@factories
def test_large_values(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, str, list[int])
    big = list(range(300_000))
    s.put("big", big)
    s.put("text-free", [1])
    for i in range(40):
        s.put(f"k{i}", [i])
    assert s.get("big") == big
    again = make(factory, str, list[int])
    again.restore(s.snapshot())
    assert again.get("big") == big and len(again) == 42


@factories
def test_many_keys_beyond_the_cache(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, int, str)
    n = 5_000
    for i in range(n):
        s.put(i, str(i))
    for i in range(0, n, 2):
        s.delete(i)
    for i in range(0, n, 4):
        s.put(i, "again")
    expected = {i: str(i) for i in range(1, n, 2)} | {i: "again" for i in range(0, n, 4)}
    assert len(s) == len(expected)
    assert all(s.get(i) == expected.get(i) for i in range(n))
    assert dict(s.items()) == expected
    assert s.snapshot().num_rows == len(expected)


@factories
def test_optional_value_none_is_stored(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, str, int | None)
    s.put("none", None)
    for i in range(40):
        s.put(f"k{i}", i)
    assert "none" in s and s.get("none") is None and "missing" not in s
    assert len(s) == 41


@factories
def test_read_after_put_returns_the_put_value(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, str, Stats)
    first = Stats(1, {"a"})
    s.put("k", first)
    assert s.get("k") == first
    for i in range(40):  # evicts "k" from a small cache
        s.put(f"x{i}", Stats(i))
    second = Stats(2, {"a", "b"})
    s.put("k", second)
    assert s.get("k") == second and "k" in s


@factories
def test_restore_replaces_later_writes_exactly(factory: StateBackendFactory[Any, Any]) -> None:
    """A resumed run restores the checkpoint: writes made after it must all disappear."""
    s = make(factory, int, int)
    for i in range(100):
        s.put(i, i)
    checkpoint = s.snapshot()
    for i in range(50, 200):
        s.put(i, -i)
    for i in range(10):
        s.delete(i)
    s.restore(checkpoint)
    assert dict(s.items()) == {i: i for i in range(100)} and len(s) == 100
    assert s.get(150) is None and s.get(5) == 5


@factories
def test_clear_after_values_reached_disk(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, int, int)
    for i in range(100):
        s.put(i, i)
    assert len(s) == 100
    s.clear()
    assert len(s) == 0 and s.get(7) is None and 7 not in s and list(s.items()) == []
    s.put(7, 70)
    assert dict(s.items()) == {7: 70}


@factories
def test_backends_do_not_share_keys(factory: StateBackendFactory[Any, Any]) -> None:
    a, b = make(factory, str, int), make(factory, str, int)
    for i in range(40):
        a.put(f"k{i}", i)
    b.put("k1", -1)
    assert len(a) == 40 and len(b) == 1 and b.get("k2") is None
    assert a.get("k1") == 1 and dict(b.items()) == {"k1": -1}


# --- change tracking (incremental checkpoints), for backends that support it ------------------

tracking = pytest.mark.parametrize(
    "factory",
    [f for f in FACTORIES if getattr(f, "supports_change_tracking", True)],
    ids=lambda f: getattr(f, "__name__", "DiskBackend-cache16"),
)


@tracking
def test_take_changes_reports_writes_and_deletes_once(
    factory: StateBackendFactory[Any, Any],
) -> None:
    s = make(factory, str, int)
    for i in range(50):
        s.put(f"old{i}", i)
    s.track_changes()
    _, put = s.accessors()
    put("new", 1)  # the hot-path callable records too
    s.put("old1", 100)
    s.put("gone", 5)
    s.delete("gone")  # written then deleted: only deleted
    s.delete("old2")
    s.delete("back")
    s.put("back", 7)  # deleted then written: only written
    for i in range(40):  # through a small cache: changes survive eviction
        s.put(f"x{i}", i)
    changed, deleted = s.take_changes()
    expected = {"new": 1, "old1": 100, "back": 7} | {f"x{i}": i for i in range(40)}
    rows = {r["key"]: r["value"] for r in changed.to_pylist()}
    assert rows == expected and changed.num_rows == len(expected)
    assert changed.schema == snapshot_schema(codec_for(str), codec_for(int))
    assert set(deleted) == {"gone", "old2"} and len(deleted) == 2
    again, none = s.take_changes()
    assert again.num_rows == 0 and none == []


@tracking
def test_changes_applied_on_a_copy_give_the_same_state(
    factory: StateBackendFactory[Any, Any],
) -> None:
    s = make(factory, int, int)
    for i in range(100):
        s.put(i, i)
    base = s.snapshot()
    s.track_changes()
    for i in range(0, 100, 3):
        s.put(i, -i)
    for i in range(1, 100, 5):
        s.delete(i)
    copy = make(factory, int, int)
    copy.restore(base)
    copy.apply_changes(*s.take_changes())
    assert dict(copy.items()) == dict(s.items()) and len(copy) == len(s)


@tracking
def test_forget_changes_starts_the_record_afresh(factory: StateBackendFactory[Any, Any]) -> None:
    s = make(factory, str, int)
    s.track_changes()
    s.put("a", 1)
    s.delete("b")
    s.forget_changes()
    s.put("c", 3)
    changed, deleted = s.take_changes()
    assert changed.to_pylist() == [{"key": "c", "value": 3}] and deleted == []
    assert dict(s.items()) == {"a": 1, "c": 3}


_OPS = st.lists(
    st.tuples(st.sampled_from(["put", "hot_put", "delete", "clear", "take"]),
              st.integers(0, 7), st.integers(-5, 5)),
    max_size=60,
)


@tracking
@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_a_chain_of_changes_rebuilds_the_state(
    factory: StateBackendFactory[Any, Any], ops: list[tuple[str, int, int]]
) -> None:
    """Any mix of writes, deletes and clears, taken as deltas at any points: the base plus
    the deltas in order give the live state (what restoring an incremental chain does)."""
    s = make(factory, int, int)
    for k in range(4):
        s.put(k, k)
    base = s.snapshot()
    s.track_changes()
    deltas: list[tuple[Any, list[Any]]] = []
    for op, key, value in ops:
        if op == "put":
            s.put(key, value)
        elif op == "hot_put":
            s.accessors()[1](key, value)
        elif op == "delete":
            s.delete(key)
        elif op == "clear":
            s.clear()
        else:
            deltas.append(take(s, as_lists=len(deltas) % 2 == 1))
    deltas.append(take(s, as_lists=False))
    copy = make(factory, int, int)
    copy.restore(base)
    for changed, deleted in deltas:
        assert not set(deleted) & set(changed.column("key").to_pylist())
        copy.apply_changes(changed, deleted)
    assert dict(copy.items()) == dict(s.items())


def take(s: StateBackend[Any, Any], *, as_lists: bool) -> tuple[Any, list[Any]]:
    """The changes, through take_changes or take_change_lists; has_changes must agree."""
    said = s.has_changes()
    if as_lists:
        keys, values, deleted = s.take_change_lists()
        changed = pa.Table.from_arrays(
            [s.key_codec.to_arrow(keys), s.value_codec.to_arrow(values)],
            schema=snapshot_schema(s.key_codec, s.value_codec),
        )
    else:
        changed, deleted = s.take_changes()
    assert said or (changed.num_rows == 0 and not deleted), "has_changes() said no changes"
    assert not s.has_changes() or type(s).has_changes is StateBackend.has_changes
    return changed, deleted
