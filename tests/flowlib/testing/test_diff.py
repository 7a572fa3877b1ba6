"""Typed diffs of outputs: field by field, ordered and unordered, and the pytest hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import pytest

from flowlib.testing import OutputMismatch, assert_outputs, diff_outputs
from flowlib.testing.plugin import pytest_assertrepr_compare


@dataclass(frozen=True)
class Inner:
    code: int
    tags: tuple[str, ...] = ()


@dataclass
class Row:
    name: str
    count: int
    inner: Inner = field(default_factory=lambda: Inner(0))
    extra: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


class Code:
    """Prints like an int, but is not one."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


class Pair(NamedTuple):
    left: int
    right: str


def message(actual: list[object], expected: list[object], *, ordered: bool = True) -> str:
    with pytest.raises(OutputMismatch) as failure:
        assert_outputs(actual, expected, ordered=ordered)
    return str(failure.value)


def test_equal_outputs_pass() -> None:
    assert_outputs([Row("a", 1)], [Row("a", 1)])
    assert_outputs([Row("a", 1), Row("b", 2)], [Row("b", 2), Row("a", 1)], ordered=False)
    assert diff_outputs([], []) == []


def test_fields_are_diffed_by_path_including_nested_records() -> None:
    got = message(
        [Row("a", 1, Inner(1, ("x",)), {"k": 1, "gone": 0}, {"p"})],
        [Row("a", 2, Inner(1, ("y",)), {"k": 2, "new": 3}, {"q"})],
    )
    assert got.splitlines() == [
        "outputs differ (actual: 1 item, expected: 1 item)",
        "  actual[0] != expected[0] (Row):",
        "    .count: 1 != 2",
        "    .inner.tags[0]: 'x' != 'y'",
        "    .extra['gone']: 0 != (absent)",
        "    .extra['new']: (absent) != 3",
        "    .extra['k']: 1 != 2",
        "    .seen: only in actual {'p'}, only in expected {'q'}",
    ]


def test_named_tuples_and_mismatched_types() -> None:
    got = message([Pair(1, "a"), Pair(2, "b")], [Pair(1, "z"), Inner(2)])
    assert "    .right: 'a' != 'z'" in got
    assert "  actual[1] != expected[1] (Pair vs Inner):" in got
    assert "    Pair(left=2, right='b') != Inner(code=2, tags=())" in got
    assert "    1 != 1 (types Code and int)" in message([Code(1)], [1])


def test_missing_and_unexpected_items_are_named_with_their_index() -> None:
    got = message([Row("a", 1), Row("c", 3)], [Row("a", 1), Row("b", 2), Row("c", 3)])
    assert got.splitlines() == [
        "outputs differ (actual: 2 items, expected: 3 items)",
        "  missing (expected[1]): Row(name='b', count=2, inner=Inner(code=0, tags=()), "
        "extra={}, seen=set())",
    ]
    got = message([Row("a", 1), Row("x", 9), Row("c", 3)], [Row("a", 1), Row("c", 3)])
    assert "  unexpected (actual[1]): Row(name='x'" in got


def test_unordered_comparison_pairs_leftovers_of_the_same_type() -> None:
    got = message([Pair(1, "a"), Row("r", 1), Pair(2, "b")], [Pair(2, "c"), Pair(1, "a")],
                  ordered=False)
    assert got.splitlines()[0] == "outputs differ (actual: 3 items, expected: 2 items, unordered)"
    assert "  actual[2] != expected[0] (Pair):" in got and "    .right: 'b' != 'c'" in got
    assert "  unexpected (actual[1]): Row(name='r'" in got


def test_long_values_are_shortened() -> None:
    got = message(["x" * 500], ["y"])
    assert "..." in got and len(max(got.splitlines(), key=len)) < 200


def test_assertrepr_hook_answers_for_lists_of_records_only() -> None:
    config = pytest.Config.__new__(pytest.Config)  # the hook never reads it
    lines = pytest_assertrepr_compare(config, "==", [Row("a", 1)], [Row("a", 2)])
    assert lines == [
        "[1 x Row] == [1 x Row]",
        "outputs differ (left: 1 item, right: 1 item)",
        "  left[0] != right[0] (Row):",
        "    .count: 1 != 2",
    ]
    assert pytest_assertrepr_compare(config, "==", [1], [2]) is None
    assert pytest_assertrepr_compare(config, "!=", [Row("a", 1)], [Row("a", 1)]) is None
    assert pytest_assertrepr_compare(config, "==", Pair(1, "a"), Pair(1, "b")) is None
    assert pytest_assertrepr_compare(config, "==", [], [Pair(1, "a")]) == [
        "[] == [1 x Pair]",
        "outputs differ (left: 0 items, right: 1 item)",
        "  missing (right[0]): Pair(left=1, right='a')",
    ]
