"""key_bytes: equal values give equal bytes, deterministically across processes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import os
import subprocess
import sys
from typing import Any

import pytest

from flowlib.codecs import codec_for

PLUS2 = dt.timezone(dt.timedelta(hours=2))


class Level(enum.Enum):
    INFO = "info"
    WARN = "warn"


@dataclasses.dataclass(frozen=True)
class Key:
    tenant: str
    shard: int


@dataclasses.dataclass(frozen=True)
class Reading:
    value: float
    at: dt.datetime


EQUAL_PAIRS: list[tuple[object, Any, Any]] = [
    (set[str], {"a", "b", "c"}, {"c", "b", "a"}),
    (dict[str, int], {"a": 1, "b": 2}, {"b": 2, "a": 1}),
    (dict[int, str], {10: "a", 2: "b"}, {2: "b", 10: "a"}),
    (dict[Level, int], {Level.INFO: 1, Level.WARN: 2}, {Level.WARN: 2, Level.INFO: 1}),
    (float, 0.0, -0.0),
    (float, 1.0, 1),
    (int | float, 1, 1.0),
    (int | bool, 1, True),
    (Any, {"a": 1}, {"a": 1.0}),
    (decimal.Decimal, decimal.Decimal("1.10"), decimal.Decimal("1.1")),
    (decimal.Decimal, decimal.Decimal("0"), decimal.Decimal("-0.00")),
    (
        dt.datetime,
        dt.datetime(2024, 1, 1, 12, tzinfo=PLUS2),
        dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC),
    ),
    (dt.time, dt.time(12, tzinfo=PLUS2), dt.time(10, tzinfo=dt.UTC)),
    (set[Level], {Level.INFO, Level.WARN}, {Level.WARN, Level.INFO}),
    (
        frozenset[frozenset[int]],
        frozenset({frozenset({1, 2}), frozenset({3})}),
        frozenset({frozenset({3}), frozenset({2, 1})}),
    ),
    (set[Key], {Key("a", 1), Key("b", 2)}, {Key("b", 2), Key("a", 1)}),
    (
        Reading,
        Reading(-0.0, dt.datetime(2024, 1, 1, 2, tzinfo=PLUS2)),
        Reading(0.0, dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
    ),
    (tuple[str, int], ("a", 1), ("a", 1)),
]


@pytest.mark.parametrize(("annotation", "left", "right"), EQUAL_PAIRS)
def test_equal_values_give_equal_bytes(annotation: object, left: Any, right: Any) -> None:
    assert left == right
    codec = codec_for(annotation)
    assert codec.key_bytes(left) == codec.key_bytes(right)


def test_different_values_give_different_bytes() -> None:
    codec = codec_for(tuple[str, int])
    assert codec.key_bytes(("a", 1)) != codec.key_bytes(("a", 2))
    assert codec_for(Key).key_bytes(Key("a", 1)) == b'{"tenant":"a","shard":1}'


def test_simple_keys_are_plain_json() -> None:
    assert codec_for(str).key_bytes("user-1") == b'"user-1"'
    assert codec_for(tuple[str, int]).key_bytes(("a", 1)) == b'["a",1]'


SCRIPT = """
import sys
from flowlib.codecs import codec_for
codec = codec_for(dict[str, frozenset[str]])
value = {w: frozenset(w * i for i in range(1, 6)) for w in "qwertyuiop"}
sys.stdout.write(codec.key_bytes(value).hex())
"""


def test_key_bytes_do_not_depend_on_hash_seed() -> None:
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
