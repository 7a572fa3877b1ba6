"""Readable diffs of expected vs actual outputs: item by item, field by field.

Pure Python (no pytest, no engine): used by :func:`assert_outputs` and by the pytest plugin's
``pytest_assertrepr_compare`` hook.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["OutputMismatch", "assert_outputs", "diff_outputs", "diff_values", "is_record"]

T = TypeVar("T")

_MAX_REPR = 160


class OutputMismatch(AssertionError):
    """Raised by :func:`assert_outputs`; the message is the typed diff.

    >>> try:
    ...     assert_outputs([1, 2], [1])
    ... except OutputMismatch as failure:
    ...     print(failure)
    outputs differ (actual: 2 items, expected: 1 item)
      unexpected (actual[1]): 2
    """


def assert_outputs(
    actual: Iterable[T], expected: Iterable[T], *, ordered: bool = True
) -> None:
    """Fail with a field-by-field diff unless ``actual`` equals ``expected``.

    ``ordered=False`` compares them as multisets (outputs of several workers or key groups
    arrive in no fixed order).

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Peak:
    ...     sensor: str
    ...     value: float
    >>> assert_outputs([Peak("a", 1.0)], [Peak("a", 1.0)])
    >>> try:
    ...     assert_outputs([Peak("a", 1.0), Peak("b", 3.0)], [Peak("b", 2.0), Peak("a", 1.0)],
    ...                    ordered=False)
    ... except AssertionError as failure:
    ...     print(failure)
    outputs differ (actual: 2 items, expected: 2 items, unordered)
      actual[1] != expected[0] (Peak):
        .value: 3.0 != 2.0
    """
    got, want = list(actual), list(expected)
    lines = diff_outputs(got, want, ordered=ordered)
    if lines:
        raise OutputMismatch("\n".join(lines))


def diff_outputs(
    actual: Sequence[Any],
    expected: Sequence[Any],
    *,
    ordered: bool = True,
    labels: tuple[str, str] = ("actual", "expected"),
) -> list[str]:
    """The lines of a diff between two output lists; empty when they are equal.

    >>> diff_outputs([1, 2], [1, 3])
    ['outputs differ (actual: 2 items, expected: 2 items)', '  actual[1] != expected[1] (int):', \
'    2 != 3']
    """
    a_name, e_name = labels
    pairs, extra, missing = (
        _align_ordered(actual, expected) if ordered else _align_unordered(actual, expected)
    )
    if not pairs and not extra and not missing:
        return []
    mode = "" if ordered else ", unordered"
    lines = [
        f"outputs differ ({a_name}: {_items(len(actual))}, {e_name}: "
        f"{_items(len(expected))}{mode})"
    ]
    for i, j in pairs:
        a, e = actual[i], expected[j]
        lines.append(f"  {a_name}[{i}] != {e_name}[{j}] ({_type_label(a, e)}):")
        lines += [f"    {line}" for line in diff_values(a, e)]
    lines += [f"  missing ({e_name}[{j}]): {_repr(expected[j])}" for j in missing]
    lines += [f"  unexpected ({a_name}[{i}]): {_repr(actual[i])}" for i in extra]
    return lines


def diff_values(actual: object, expected: object, path: str = "") -> list[str]:
    """``path: actual != expected`` for every differing leaf of two values.

    Dataclasses, named tuples, dicts, and lists or tuples of equal length are compared field by
    field (item by item); anything else as a whole.

    >>> from flowlib.dead_letter import DeadLetter
    >>> from datetime import datetime, UTC
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> diff_values(DeadLetter("s", "E", "x", "r", None, t), DeadLetter("s", "E", "y", "r", "o", t))
    [".error: 'x' != 'y'", ".origin: None != 'o'"]
    """
    if _equal(actual, expected):
        return []
    if type(actual) is not type(expected):
        note = ""
        if _repr(actual) == _repr(expected):
            note = f" (types {type(actual).__name__} and {type(expected).__name__})"
        return [f"{_at(path)}{_repr(actual)} != {_repr(expected)}{note}"]
    if dataclasses.is_dataclass(actual) and not isinstance(actual, type):
        out: list[str] = []
        for f in dataclasses.fields(actual):
            x, y = getattr(actual, f.name), getattr(expected, f.name)
            out += diff_values(x, y, f"{path}.{f.name}")
        return out or [f"{_at(path)}{_repr(actual)} != {_repr(expected)}"]
    names = getattr(actual, "_fields", None)
    if isinstance(actual, tuple) and isinstance(names, tuple):
        out = []
        for name, x, y in zip(names, actual, expected, strict=True):  # type: ignore[call-overload]
            out += diff_values(x, y, f"{path}.{name}")
        return out
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        out = []
        for k in actual.keys() - expected.keys():
            out.append(f"{path}[{k!r}]: {_repr(actual[k])} != (absent)")
        for k in expected.keys() - actual.keys():
            out.append(f"{path}[{k!r}]: (absent) != {_repr(expected[k])}")
        for k in actual.keys() & expected.keys():
            out += diff_values(actual[k], expected[k], f"{path}[{k!r}]")
        return out
    if (
        isinstance(actual, list | tuple)
        and isinstance(expected, list | tuple)
        and len(actual) == len(expected)
    ):
        out = []
        for i, (x, y) in enumerate(zip(actual, expected, strict=True)):
            out += diff_values(x, y, f"{path}[{i}]")
        return out
    if isinstance(actual, set | frozenset) and isinstance(expected, set | frozenset):
        only_a = sorted(map(repr, actual - expected))
        only_e = sorted(map(repr, expected - actual))
        return [f"{_at(path)}only in actual {{{', '.join(only_a)}}}, "
                f"only in expected {{{', '.join(only_e)}}}"]
    return [f"{_at(path)}{_repr(actual)} != {_repr(expected)}"]


def is_record(value: object) -> bool:
    """Whether ``value`` is a dataclass instance or a named tuple (a value with named fields)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return True
    return isinstance(value, tuple) and isinstance(getattr(value, "_fields", None), tuple)


# --- alignment --------------------------------------------------------------------------------


def _align_ordered(
    actual: Sequence[Any], expected: Sequence[Any]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pairs to diff field by field, indices only in ``actual``, indices only in ``expected``."""
    if len(actual) == len(expected):
        differing = [(i, i) for i in range(len(actual)) if not _equal(actual[i], expected[i])]
        return differing, [], []
    matcher = difflib.SequenceMatcher(
        None, [_repr(x) for x in actual], [_repr(x) for x in expected], autojunk=False
    )
    pairs: list[tuple[int, int]] = []
    extra: list[int] = []
    missing: list[int] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        n = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        pairs += [(i1 + k, j1 + k) for k in range(n)]
        extra += range(i1 + n, i2)
        missing += range(j1 + n, j2)
    return pairs, extra, missing


def _align_unordered(
    actual: Sequence[Any], expected: Sequence[Any]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    left = list(range(len(actual)))
    missing: list[int] = []
    for j, e in enumerate(expected):
        hit = next((i for i in left if _equal(actual[i], e)), None)
        if hit is None:
            missing.append(j)
        else:
            left.remove(hit)
    # Pair what is left over by type, in order, so a changed field shows as a field diff.
    pairs: list[tuple[int, int]] = []
    still_missing: list[int] = []
    for j in missing:
        hit = next((i for i in left if type(actual[i]) is type(expected[j])), None)
        if hit is None:
            still_missing.append(j)
        else:
            left.remove(hit)
            pairs.append((hit, j))
    return pairs, left, still_missing


# --- formatting -------------------------------------------------------------------------------


def _equal(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a broken __eq__ only makes the values "different"
        return False


def _at(path: str) -> str:
    return f"{path}: " if path else ""


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _type_label(a: object, b: object) -> str:
    ta, tb = type(a).__qualname__, type(b).__qualname__
    return ta if ta == tb else f"{ta} vs {tb}"


def _repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."
