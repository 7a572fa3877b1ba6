"""Converting checkpointed state tables to a changed state type (Arrow level), or refusing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypedDict

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib.codecs import codec_for, describe
from flowlib.codecs._strategies import strategy_for
from flowlib.engine._evolution import Conversion, Incompatible, conversion, type_names
from flowlib.engine._snapshots import decode_snapshot, encode_snapshot
from flowlib.errors import StateSchemaError
from flowlib.state import snapshot_schema

# --- v1 and v2 of a nested state type -------------------------------------------------------


@dataclass
class Latency1:
    max: int
    count: int
    unit: str


@dataclass
class Stats1:
    n: int
    latency: Latency1 | None
    history: list[Latency1]
    by_host: dict[str, Latency1]


@dataclass
class Latency2:
    max: float  # widened
    count: int
    p99: float = -1.0  # added with a default (unit dropped)


@dataclass
class Stats2:
    n: float  # widened
    latency: Latency2 | None
    history: list[Latency2]
    by_host: dict[str, Latency2]
    tags: list[str] = field(default_factory=lambda: ["migrated"])
    note: str | None = None  # Optional without a default: None


def upgrade_latency(v: Latency1) -> Latency2:
    return Latency2(float(v.max), v.count)


def upgrade(v: Stats1) -> Stats2:
    return Stats2(
        float(v.n),
        None if v.latency is None else upgrade_latency(v.latency),
        [upgrade_latency(x) for x in v.history],
        {k: upgrade_latency(x) for k, x in v.by_host.items()},
    )


def table_of(keys: list[Any], values: list[Any], key_type: object, value_type: object) -> pa.Table:
    k, v = codec_for(key_type), codec_for(value_type)
    return pa.Table.from_arrays([k.to_arrow(keys), v.to_arrow(values)],
                                schema=snapshot_schema(k, v))


def convert(table: pa.Table, key_type: object, value_type: object, **kw: Any) -> Conversion:
    return conversion("stats", table.schema, key_type, value_type, **kw)


def values_of(table: pa.Table, value_type: object) -> list[Any]:
    return codec_for(value_type).from_arrow(table.column("value"))


SAMPLE = [
    Stats1(3, Latency1(7, 2, "ms"), [Latency1(1, 1, "s"), Latency1(2, 5, "us")],
           {"a": Latency1(9, 9, "ms")}),
    Stats1(0, None, [], {}),
    Stats1(2**60 + 1, Latency1(-4, 0, ""), [Latency1(0, 0, "x")], {"b": Latency1(1, 2, "y")}),
]


def test_nested_records_gain_defaults_drop_fields_and_widen_numbers() -> None:
    table = table_of(["k1", "k2", "k3"], SAMPLE, str, Stats1)
    conv = convert(table, str, Stats2)
    got = values_of(conv.table(table), Stats2)
    assert got == [upgrade(v) for v in SAMPLE]
    assert got[0].tags == ["migrated"] and got[0].note is None and got[0].latency is not None
    assert got[0].latency.p99 == -1.0
    assert got[2].n == float(2**60 + 1)  # Python's own int -> float rounding
    shown = {str(c) for c in conv.changes}
    assert "state Stats2.latency.max: widened int -> float" in shown
    assert "state Stats2.history[*].p99: added = -1.0" in shown
    assert "state Stats2.by_host[*].unit: dropped (was str)" in shown
    assert "state Stats2.note: added = None" in shown
    assert conv.key is None  # the key type did not change


def test_the_converted_table_has_the_new_schema_and_keeps_its_metadata() -> None:
    table = table_of(["k"], SAMPLE[:1], str, Stats1).replace_schema_metadata({b"x": b"1"})
    out = convert(table, str, Stats2).table(table)
    assert out.schema.remove_metadata() == snapshot_schema(codec_for(str), codec_for(Stats2))
    assert out.schema.metadata == {b"x": b"1"}
    assert out.column("key").to_pylist() == ["k"]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(strategy_for(describe(Stats1)), max_size=6),
    cut=st.integers(0, 3),
)
def test_any_v1_state_converts_like_the_python_upgrade(values: list[Stats1], cut: int) -> None:
    # A sliced table (offsets into its buffers) must convert like a fresh one.
    keys = [f"k{i}" for i in range(len(values))]
    table = table_of(keys, values, str, Stats1).slice(min(cut, len(values)))
    expected = [upgrade(v) for v in values[min(cut, len(values)):]]
    assert values_of(convert(table, str, Stats2).table(table), Stats2) == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20))
def test_int_to_float_widening_rounds_as_python_does(ints: list[int]) -> None:
    table = table_of(list(range(len(ints))), ints, int, int)
    assert values_of(convert(table, int, float).table(table), float) == [float(i) for i in ints]


class Point1(NamedTuple):
    x: int
    y: int


class Point2(NamedTuple):
    x: int
    y: float
    label: str = "?"


class Doc1(TypedDict):
    name: str
    points: list[Point1]


class Doc2Required(TypedDict):
    name: str
    points: list[Point2]


class Doc2(Doc2Required, total=False):  # total=False: NotRequired is a string here
    extra: int  # absent in converted values


def test_typeddicts_and_namedtuples_convert() -> None:
    table = table_of(["a"], [Doc1(name="n", points=[Point1(1, 2)])], str, Doc1)
    conv = convert(table, str, Doc2)
    assert values_of(conv.table(table), Doc2) == [{"name": "n", "points": [Point2(1, 2.0, "?")]}]
    assert "state Doc2.extra: added (absent)" in {str(c) for c in conv.changes}


# --- refusals --------------------------------------------------------------------------------


@dataclass
class LatencyStr:
    max: str
    count: int
    unit: str


@dataclass
class StatsStr:
    n: int
    latency: LatencyStr | None
    history: list[Latency1]
    by_host: dict[str, Latency1]


@dataclass
class StatsRequired:
    n: int
    latency: Latency1 | None
    history: list[Latency1]
    by_host: dict[str, Latency1]
    owner: str  # new, no default


@dataclass
class Flag1:
    on: bool


@dataclass
class Flag2:
    on: int


def test_a_changed_field_type_is_refused_naming_step_path_and_types() -> None:
    table = table_of(["k"], SAMPLE[:1], str, Stats1)
    with pytest.raises(Incompatible) as err:
        convert(table, str, StatsStr, old_names={"state": type_names(Stats1)})
    e = err.value
    assert (e.step, e.part, e.path, e.old, e.new) == ("stats", "state", "StatsStr.latency.max",
                                                       "int", "str")
    assert "step 'stats'" in str(e) and "StatsStr.latency.max" in str(e)
    assert isinstance(e, StateSchemaError)


def test_a_new_field_without_default_is_refused() -> None:
    table = table_of(["k"], SAMPLE[:1], str, Stats1)
    with pytest.raises(Incompatible, match=r"StatsRequired\.owner.*needs a default"):
        convert(table, str, StatsRequired)


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (Flag1, Flag2, "keep bool and int apart"),
        (float, int, "loses the fraction"),
        (dict[str, int], dict[int, int], "dict keys cannot change type"),
        (tuple[int, int], tuple[int, int, int], "cannot change length"),
        (list[int], dict[str, int], r"the state type was list\[int\], the flow now declares"),
    ],
)
def test_other_changes_are_refused(old: object, new: object, why: str) -> None:
    table = table_of(["k"], [_value_of(old)], str, old)
    with pytest.raises(Incompatible, match=why):
        convert(table, str, new)


def _value_of(tp: object) -> Any:
    samples: dict[object, Any] = {Flag1: Flag1(True), float: 1.5, dict[str, int]: {"a": 1},
                                  tuple[int, int]: (1, 2), list[int]: [1]}
    return samples[tp]


@dataclass(frozen=True)
class HostKey1:
    host: str
    port: int


@dataclass(frozen=True)
class HostKey2:
    host: str
    port: int
    zone: str = "eu"


@dataclass(frozen=True)
class HostKey0:
    host: str


def test_a_key_change_needs_a_single_key_group() -> None:
    table = table_of([HostKey1("a", 1)], [1], HostKey1, int)
    refused = r"checkpointed key cannot be converted.*HostKey2.*128 key groups"
    with pytest.raises(Incompatible, match=refused):
        convert(table, HostKey2, int, max_key_groups=128)
    conv = convert(table, HostKey2, int, max_key_groups=1)
    assert codec_for(HostKey2).from_arrow(conv.table(table).column("key")) == [
        HostKey2("a", 1, "eu")]
    with pytest.raises(Incompatible, match="a key field cannot be dropped"):
        convert(table, HostKey0, int, max_key_groups=1)


def test_decode_snapshot_converts_state_and_timer_keys() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    old = table_of([HostKey1("h", 1)], [SAMPLE[0]], HostKey1, Stats1)
    data = encode_snapshot("stats", HostKey1, Stats1, old, [(HostKey1("h", 1), t, "event")],
                           t, t, False)
    k2, v2 = codec_for(HostKey2), codec_for(Stats2)
    snap = decode_snapshot(data, "stats", snapshot_schema(k2, v2), k2, v2)
    assert v2.from_arrow(snap.table.column("value")) == [upgrade(SAMPLE[0])]
    assert snap.timers == [(HostKey2("h", 1), t, "event")]
    with pytest.raises(StateSchemaError, match="'stats'"):  # no value codec: no evolution
        decode_snapshot(data, "stats", snapshot_schema(k2, v2), k2)
