"""The contract every StateBackend must meet, run over every backend in ALL_BACKENDS."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib.codecs import codec_for
from flowlib.state import StateBackend, StateBackendFactory, snapshot_schema
from state_backends import ALL_BACKENDS


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
