"""Aggregates: how a group of values (a window's events) folds into one result.

An :class:`Aggregate` ``[In, Acc, Out]`` turns values of type ``In`` into an accumulator ``Acc``
(``create``, ``add``), combines two accumulators (``merge``, needed when session windows merge)
and reads the result ``Out`` from an accumulator (``result``). ``acc_type`` is the runtime
annotation of ``Acc``: window operators store accumulators in keyed state, and checkpoints get
their exact Arrow schema from it, so ``Acc`` must be encodable by
:func:`flowlib.codecs.codec_for` (numbers, strings, lists, tuples, dataclasses...).

The numeric built-ins take an optional extractor ``of``: ``Mean()`` averages a stream of floats,
``Mean(lambda r: r.value)`` the ``value`` of each event. To compute several results over the
same values use :class:`Multi`; for anything else subclass :class:`Aggregate`.

Ownership: ``add(acc, v)`` and ``merge(a, b)`` may update ``acc`` / ``a`` in place and return
it (appending to a list is O(1), copying it is not). Callers must use the returned value and not
reuse the argument afterwards; ``b`` is never modified.

Runs: the window operators fold a key's run of events at once with ``prepare`` (once per run:
Sum, Mean, Min and Max extract their numbers there, and a ``Multi`` extracts each extractor's
numbers once for all its parts) and ``add_range`` (once per window: a slice of the run). Count,
Sum, Mean, Min, Max and ``Multi`` of them fold a slice in C-level calls (``len``, ``sum`` or
``reduce``, ``max``); every other aggregate adds value by value. The result is exactly that of
``add`` per value in the same order, float rounding included.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from itertools import islice, repeat
from operator import add as _plus
from operator import call, getitem
from types import GenericAlias
from typing import Any, Generic, TypeVar, cast, overload

from typing_extensions import override

from flowlib.time import EPOCH

__all__ = [
    "Aggregate",
    "Collect",
    "Count",
    "First",
    "Last",
    "Max",
    "Mean",
    "MeanAcc",
    "Min",
    "Multi",
    "Percentile",
    "Stamped",
    "StdDev",
    "Sum",
    "WelfordAcc",
]

# In is only consumed, so an aggregate of floats also aggregates ints, and Count() (which
# accepts any object) fits every stream without naming the event type.
In = TypeVar("In", contravariant=True)
Acc = TypeVar("Acc")
Out = TypeVar("Out", covariant=True)
E = TypeVar("E")
T = TypeVar("T")
A1 = TypeVar("A1")
A2 = TypeVar("A2")
A3 = TypeVar("A3")
A4 = TypeVar("A4")
A5 = TypeVar("A5")
A6 = TypeVar("A6")
O1 = TypeVar("O1")
O2 = TypeVar("O2")
O3 = TypeVar("O3")
O4 = TypeVar("O4")
O5 = TypeVar("O5")
O6 = TypeVar("O6")

_US = timedelta(microseconds=1)


def _identity(value: Any) -> Any:
    return value


def _sum_from(values: Sequence[Any], start: Any) -> Any:
    """``start + values[0] + values[1] + ...`` left to right, the rounding of repeated ``add``."""
    return reduce(_plus, values, start)


if sys.version_info < (3, 12):
    # 3.11's sum() adds floats left to right in a C double: the same rounding as reduce, in a
    # fifth of the time (measured: 0.29 against 1.04 us for 38 floats). From 3.12 sum()
    # compensates rounding errors, so it would differ from repeated add.
    _sum_from = sum  # type: ignore[assignment]


class Aggregate(ABC, Generic[In, Acc, Out]):
    """Folds values of type ``In`` into an accumulator ``Acc``; reads ``Out`` from it.

    ``merge`` must agree with ``add``: folding values into two accumulators and merging them
    gives the result of folding all values into one (up to float rounding), and it must be
    associative. Set ``acc_type`` to the runtime annotation of ``Acc``.

    A custom aggregate, the range (max - min) of the values:

    >>> class Spread(Aggregate[float, tuple[float, float], float]):
    ...     acc_type = tuple[float, float]
    ...     def create(self) -> tuple[float, float]:
    ...         return (math.inf, -math.inf)
    ...     def add(self, acc: tuple[float, float], value: float) -> tuple[float, float]:
    ...         return (min(acc[0], value), max(acc[1], value))
    ...     def merge(self, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    ...         return (min(a[0], b[0]), max(a[1], b[1]))
    ...     def result(self, acc: tuple[float, float]) -> float:
    ...         return acc[1] - acc[0]
    >>> Spread().of_values([3.0, 9.5, 1.0])
    8.5
    """

    acc_type: object
    """The runtime annotation of ``Acc`` (e.g. ``int``, ``list[float]``, a dataclass)."""

    atomic_ranges: bool = False
    """True when :meth:`add_range` never modifies the accumulator it is given (it returns a new
    one), so a failed ``add_range`` leaves it as it was. The window operators fold whole runs
    with ``add_range`` only then; otherwise they call ``add`` per value."""

    @abstractmethod
    def create(self) -> Acc:
        """A new, empty accumulator (a fresh object every call)."""

    @abstractmethod
    def add(self, acc: Acc, value: In) -> Acc:
        """``acc`` with ``value`` added; may update ``acc`` in place and return it."""

    @abstractmethod
    def merge(self, a: Acc, b: Acc) -> Acc:
        """The accumulator of ``a``'s values followed by ``b``'s; may update ``a`` in place."""

    @abstractmethod
    def result(self, acc: Acc) -> Out:
        """The result for the values in ``acc``; must not modify ``acc``."""

    def prepare(self, values: Sequence[In]) -> Any:
        """What :meth:`add_range` reads for a run of values: by default the values themselves;
        an override may extract what it needs once per run (several windows share it)."""
        return values

    def add_range(self, acc: Acc, prepared: Any, lo: int, hi: int) -> Acc:
        """``acc`` with the values ``lo`` to ``hi - 1`` of a run added in order, exactly as
        repeated :meth:`add`; ``prepared`` is what :meth:`prepare` returned for the run.

        >>> c = Count()
        >>> c.add_range(2, c.prepare(["a", "b", "c"]), 1, 3)
        4
        """
        for value in islice(prepared, lo, hi):
            acc = self.add(acc, value)
        return acc

    def of_values(self, values: Iterable[In]) -> Out:
        """The result for ``values`` (a convenience for tests and examples)."""
        acc = self.create()
        for value in values:
            acc = self.add(acc, value)
        return self.result(acc)


class _Numeric(Aggregate[E, Acc, float]):
    """Numeric aggregates: ``of`` extracts the number from each event (identity if omitted)."""

    def __init__(self, of: Callable[[E], float] | None) -> None:
        self.of: Callable[[E], float] = _identity if of is None else of


class _Extracting(_Numeric[E, Acc]):
    """Numeric aggregates that fold a slice of extracted numbers in C-level calls."""

    atomic_ranges = True

    @override
    def prepare(self, values: Sequence[E]) -> Sequence[Any]:
        return values if self.of is _identity else list(map(self.of, values))

    @override
    def add_range(self, acc: Acc, prepared: Sequence[Any], lo: int, hi: int) -> Acc:
        return self._add_values(acc, prepared[lo:hi])

    @abstractmethod
    def _add_values(self, acc: Acc, values: Sequence[Any]) -> Acc:
        """``acc`` with every extracted number of ``values`` added, in order; a new object."""


class Count(Aggregate[object, int, int]):
    """The number of values.

    >>> Count().of_values(["a", "b", "a"])
    3
    """

    acc_type = int
    atomic_ranges = True

    @override
    def create(self) -> int:
        return 0

    @override
    def add(self, acc: int, value: object) -> int:
        return acc + 1

    @override
    def add_range(self, acc: int, prepared: Any, lo: int, hi: int) -> int:
        return acc + (hi - lo)

    def _add_values(self, acc: int, values: Sequence[Any]) -> int:
        return acc + len(values)

    @override
    def merge(self, a: int, b: int) -> int:
        return a + b

    @override
    def result(self, acc: int) -> int:
        return acc


class Sum(_Extracting[E, float]):
    """The sum, as a float.

    >>> Sum().of_values([1.5, 2.0])
    3.5
    >>> Sum(len).of_values(["ab", "cde"])
    5.0
    """

    acc_type = float

    @overload
    def __init__(self: Sum[float]) -> None: ...
    @overload
    def __init__(self, of: Callable[[E], float]) -> None: ...
    def __init__(self, of: Callable[[E], float] | None = None) -> None:
        super().__init__(of)

    @override
    def create(self) -> float:
        return 0.0

    @override
    def add(self, acc: float, value: E) -> float:
        return acc + self.of(value)

    @override
    def _add_values(self, acc: float, values: Sequence[float]) -> float:
        return cast(float, _sum_from(values, acc))

    @override
    def merge(self, a: float, b: float) -> float:
        return a + b

    @override
    def result(self, acc: float) -> float:
        return float(acc)


@dataclass(slots=True)
class MeanAcc:
    """Accumulator of :class:`Mean`: how many values, and their sum."""

    count: int
    total: float


class Mean(_Extracting[E, MeanAcc]):
    """The arithmetic mean; NaN for no values.

    >>> Mean().of_values([1.0, 2.0, 4.5])
    2.5
    """

    acc_type = MeanAcc

    @overload
    def __init__(self: Mean[float]) -> None: ...
    @overload
    def __init__(self, of: Callable[[E], float]) -> None: ...
    def __init__(self, of: Callable[[E], float] | None = None) -> None:
        super().__init__(of)

    @override
    def create(self) -> MeanAcc:
        return MeanAcc(0, 0.0)

    @override
    def add(self, acc: MeanAcc, value: E) -> MeanAcc:
        acc.count += 1
        acc.total += self.of(value)
        return acc

    @override
    def _add_values(self, acc: MeanAcc, values: Sequence[float]) -> MeanAcc:
        return MeanAcc(acc.count + len(values), _sum_from(values, acc.total))

    @override
    def merge(self, a: MeanAcc, b: MeanAcc) -> MeanAcc:
        a.count += b.count
        a.total += b.total
        return a

    @override
    def result(self, acc: MeanAcc) -> float:
        return acc.total / acc.count if acc.count else math.nan


class Min(_Extracting[E, float]):
    """The smallest value; ``inf`` for no values (a window is never empty).

    >>> Min().of_values([3.0, -1.5, 2.0])
    -1.5
    """

    acc_type = float

    @overload
    def __init__(self: Min[float]) -> None: ...
    @overload
    def __init__(self, of: Callable[[E], float]) -> None: ...
    def __init__(self, of: Callable[[E], float] | None = None) -> None:
        super().__init__(of)

    @override
    def create(self) -> float:
        return math.inf

    @override
    def add(self, acc: float, value: E) -> float:
        return min(acc, self.of(value))

    @override
    def _add_values(self, acc: float, values: Sequence[float]) -> float:
        # One min over (acc, *values) compares exactly as repeated min(acc, v), NaN included.
        return min((acc, *values))

    @override
    def merge(self, a: float, b: float) -> float:
        return min(a, b)

    @override
    def result(self, acc: float) -> float:
        return float(acc)


class Max(_Extracting[E, float]):
    """The largest value; ``-inf`` for no values (a window is never empty).

    >>> Max().of_values([3.0, -1.5, 2.0])
    3.0
    """

    acc_type = float

    @overload
    def __init__(self: Max[float]) -> None: ...
    @overload
    def __init__(self, of: Callable[[E], float]) -> None: ...
    def __init__(self, of: Callable[[E], float] | None = None) -> None:
        super().__init__(of)

    @override
    def create(self) -> float:
        return -math.inf

    @override
    def add(self, acc: float, value: E) -> float:
        return max(acc, self.of(value))

    @override
    def _add_values(self, acc: float, values: Sequence[float]) -> float:
        return max((acc, *values))

    @override
    def merge(self, a: float, b: float) -> float:
        return max(a, b)

    @override
    def result(self, acc: float) -> float:
        return float(acc)


class Percentile(_Numeric[E, list[float]]):
    """The ``q``-quantile (0 <= q <= 1), exact, with linear interpolation between ranks.

    Matches ``statistics.quantiles(values, n=100, method="inclusive")[k - 1]`` for ``q = k/100``
    (and NumPy's default ``linear`` method); NaN for no values.

    Memory: the accumulator keeps every value, so a window costs about 8 bytes per event in a
    checkpoint and about 30 bytes per event in memory, and ``result`` sorts (O(n log n)). Use it
    for windows of up to some millions of events per key.

    >>> Percentile(0.5).of_values([4.0, 1.0, 3.0, 2.0])
    2.5
    >>> Percentile(0.99, lambda ms: ms / 1000).of_values([1000, 2000])
    1.99
    """

    acc_type = list[float]

    @overload
    def __init__(self: Percentile[float], q: float) -> None: ...
    @overload
    def __init__(self, q: float, of: Callable[[E], float]) -> None: ...
    def __init__(self, q: float, of: Callable[[E], float] | None = None) -> None:
        if not 0.0 <= q <= 1.0:
            msg = f"Percentile q must be within [0, 1], got {q!r}"
            raise ValueError(msg)
        super().__init__(of)
        self.q = q

    @override
    def create(self) -> list[float]:
        return []

    @override
    def add(self, acc: list[float], value: E) -> list[float]:
        acc.append(float(self.of(value)))
        return acc

    @override
    def merge(self, a: list[float], b: list[float]) -> list[float]:
        a.extend(b)
        return a

    @override
    def result(self, acc: list[float]) -> float:
        if not acc:
            return math.nan
        ordered = sorted(acc)
        rank = (len(ordered) - 1) * self.q
        low = math.floor(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(slots=True)
class WelfordAcc:
    """Accumulator of :class:`StdDev`: count, mean, and sum of squared deviations (Welford)."""

    count: int
    mean: float
    m2: float


class StdDev(_Numeric[E, WelfordAcc]):
    """The standard deviation: sample (n - 1, like ``statistics.stdev``) by default,
    population (n, like ``statistics.pstdev``) with ``population=True``.

    Welford's update keeps it accurate for values far from zero; NaN when undefined (fewer
    than two values for the sample deviation, none for the population one).

    >>> round(StdDev().of_values([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), 3)
    2.138
    >>> StdDev(population=True).of_values([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    2.0
    """

    acc_type = WelfordAcc

    @overload
    def __init__(self: StdDev[float], *, population: bool = False) -> None: ...
    @overload
    def __init__(self, of: Callable[[E], float], *, population: bool = False) -> None: ...
    def __init__(self, of: Callable[[E], float] | None = None, *, population: bool = False) -> None:
        super().__init__(of)
        self.population = population

    @override
    def create(self) -> WelfordAcc:
        return WelfordAcc(0, 0.0, 0.0)

    @override
    def add(self, acc: WelfordAcc, value: E) -> WelfordAcc:
        x = float(self.of(value))
        acc.count += 1
        delta = x - acc.mean
        acc.mean += delta / acc.count
        acc.m2 += delta * (x - acc.mean)
        return acc

    @override
    def merge(self, a: WelfordAcc, b: WelfordAcc) -> WelfordAcc:
        # Chan et al.'s pairwise combination: exact for the merged mean and m2.
        if b.count == 0:
            return a
        if a.count == 0:
            a.count, a.mean, a.m2 = b.count, b.mean, b.m2
            return a
        count = a.count + b.count
        delta = b.mean - a.mean
        a.mean += delta * b.count / count
        a.m2 += b.m2 + delta * delta * a.count * b.count / count
        a.count = count
        return a

    @override
    def result(self, acc: WelfordAcc) -> float:
        n = acc.count if self.population else acc.count - 1
        if n <= 0:
            return math.nan
        return math.sqrt(max(acc.m2, 0.0) / n)


@dataclass(slots=True)
class Stamped(Generic[T]):
    """Accumulator part of :class:`First` and :class:`Last`: a value and the time that ranks
    it, in microseconds since the epoch (0 when ranking by arrival)."""

    value: T
    time_us: int


def _stamped_acc_type(value_type: object) -> object:
    # Stamped is a user generic; subscripting it with a runtime value needs the Any view.
    return cast(Any, Stamped)[value_type] | None


class _Pick(Aggregate[E, Stamped[T] | None, T]):
    """Shared by First and Last: keeps one value, ranked by ``by`` or by arrival."""

    def __init__(
        self,
        value_type: type[T],
        of: Callable[[E], T] | None,
        by: Callable[[E], datetime] | None,
    ) -> None:
        self.value_type = value_type
        self.of: Callable[[E], T] = _identity if of is None else of
        self.by = by
        self.acc_type = _stamped_acc_type(value_type)

    def _stamp(self, value: E) -> Stamped[T]:
        at = 0 if self.by is None else (self.by(value) - EPOCH) // _US
        return Stamped(self.of(value), at)

    @override
    def create(self) -> Stamped[T] | None:
        return None

    @override
    def result(self, acc: Stamped[T] | None) -> T:
        if acc is None:
            msg = f"{type(self).__name__} of no values"
            raise ValueError(msg)
        return acc.value


class First(_Pick[E, T]):
    """The first value: the one with the earliest ``by`` time if ``by`` is given, else the
    first to arrive (ties: the first to arrive).

    Arrival order is the stream's order, which under out-of-order input is not event-time
    order: pass ``by`` (e.g. the event-time function) for "earliest by event time". ``merge``
    keeps ``a``'s value on ties, so merged sessions keep the earlier session's first value.

    ``value_type`` is the type of the kept value (for the checkpoint schema).

    >>> First(str).of_values(["b", "a", "c"])
    'b'
    >>> rows = [(EPOCH + timedelta(seconds=s), name) for s, name in [(5, "x"), (2, "y")]]
    >>> First(str, lambda r: r[1], by=lambda r: r[0]).of_values(rows)
    'y'
    """

    @overload
    def __init__(
        self: First[T, T], value_type: type[T], *, by: Callable[[T], datetime] | None = None
    ) -> None: ...
    @overload
    def __init__(
        self,
        value_type: type[T],
        of: Callable[[E], T],
        *,
        by: Callable[[E], datetime] | None = None,
    ) -> None: ...
    def __init__(
        self,
        value_type: type[T],
        of: Callable[[E], T] | None = None,
        *,
        by: Callable[[Any], datetime] | None = None,
    ) -> None:
        super().__init__(value_type, of, by)

    @override
    def add(self, acc: Stamped[T] | None, value: E) -> Stamped[T] | None:
        if acc is not None and self.by is None:
            return acc
        new = self._stamp(value)
        return new if acc is None or new.time_us < acc.time_us else acc

    @override
    def merge(self, a: Stamped[T] | None, b: Stamped[T] | None) -> Stamped[T] | None:
        if a is None or (b is not None and b.time_us < a.time_us):
            return b
        return a


class Last(_Pick[E, T]):
    """The last value: the one with the latest ``by`` time if ``by`` is given, else the last
    to arrive (ties: the last to arrive). See :class:`First` for arrival vs event time.

    >>> Last(str).of_values(["b", "a", "c"])
    'c'
    >>> Last(int, len).of_values(["ab", "cde"])
    3
    """

    @overload
    def __init__(
        self: Last[T, T], value_type: type[T], *, by: Callable[[T], datetime] | None = None
    ) -> None: ...
    @overload
    def __init__(
        self,
        value_type: type[T],
        of: Callable[[E], T],
        *,
        by: Callable[[E], datetime] | None = None,
    ) -> None: ...
    def __init__(
        self,
        value_type: type[T],
        of: Callable[[E], T] | None = None,
        *,
        by: Callable[[Any], datetime] | None = None,
    ) -> None:
        super().__init__(value_type, of, by)

    @override
    def add(self, acc: Stamped[T] | None, value: E) -> Stamped[T] | None:
        new = self._stamp(value)
        return new if acc is None or new.time_us >= acc.time_us else acc

    @override
    def merge(self, a: Stamped[T] | None, b: Stamped[T] | None) -> Stamped[T] | None:
        if b is None or (a is not None and a.time_us > b.time_us):
            return a
        return b


class Collect(Aggregate[E, list[T], list[T]]):
    """Every value, in arrival order (``merge`` appends ``b``'s after ``a``'s).

    Keeps all values: memory and checkpoint size grow with the window's events.
    ``value_type`` is the type of the kept values (for the checkpoint schema).

    >>> Collect(str).of_values(["b", "a"])
    ['b', 'a']
    >>> Collect(int, len).of_values(["ab", "cde"])
    [2, 3]
    """

    @overload
    def __init__(self: Collect[T, T], value_type: type[T]) -> None: ...
    @overload
    def __init__(self, value_type: type[T], of: Callable[[E], T]) -> None: ...
    def __init__(self, value_type: type[T], of: Callable[[E], T] | None = None) -> None:
        self.value_type = value_type
        self.of: Callable[[E], T] = _identity if of is None else of
        self.acc_type = GenericAlias(list, (value_type,))

    @override
    def create(self) -> list[T]:
        return []

    @override
    def add(self, acc: list[T], value: E) -> list[T]:
        acc.append(self.of(value))
        return acc

    @override
    def merge(self, a: list[T], b: list[T]) -> list[T]:
        a.extend(b)
        return a

    @override
    def result(self, acc: list[T]) -> list[T]:
        return list(acc)


class Multi(Aggregate[E, Acc, Out]):
    """Several aggregates over the same values at once: tuples of their accumulators and
    results (2 to 6 aggregates; nest a ``Multi`` for more).

    >>> stats = Multi(Mean(), StdDev(), Percentile(0.99))
    >>> mean, sd, p99 = stats.of_values([1.0, 2.0, 3.0, 4.0])
    >>> mean, round(sd, 3), round(p99, 2)
    (2.5, 1.291, 3.97)
    >>> stats.acc_type
    tuple[operators.aggregations.MeanAcc, operators.aggregations.WelfordAcc, list[float]]
    """

    @overload
    def __init__(
        self: Multi[E, tuple[A1, A2], tuple[O1, O2]],
        a1: Aggregate[E, A1, O1],
        a2: Aggregate[E, A2, O2],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: Multi[E, tuple[A1, A2, A3], tuple[O1, O2, O3]],
        a1: Aggregate[E, A1, O1],
        a2: Aggregate[E, A2, O2],
        a3: Aggregate[E, A3, O3],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: Multi[E, tuple[A1, A2, A3, A4], tuple[O1, O2, O3, O4]],
        a1: Aggregate[E, A1, O1],
        a2: Aggregate[E, A2, O2],
        a3: Aggregate[E, A3, O3],
        a4: Aggregate[E, A4, O4],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: Multi[E, tuple[A1, A2, A3, A4, A5], tuple[O1, O2, O3, O4, O5]],
        a1: Aggregate[E, A1, O1],
        a2: Aggregate[E, A2, O2],
        a3: Aggregate[E, A3, O3],
        a4: Aggregate[E, A4, O4],
        a5: Aggregate[E, A5, O5],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: Multi[E, tuple[A1, A2, A3, A4, A5, A6], tuple[O1, O2, O3, O4, O5, O6]],
        a1: Aggregate[E, A1, O1],
        a2: Aggregate[E, A2, O2],
        a3: Aggregate[E, A3, O3],
        a4: Aggregate[E, A4, O4],
        a5: Aggregate[E, A5, O5],
        a6: Aggregate[E, A6, O6],
        /,
    ) -> None: ...
    def __init__(self, *parts: Aggregate[E, Any, Any]) -> None:
        self.parts = parts
        self.acc_type = GenericAlias(tuple, tuple(p.acc_type for p in parts))
        # Per event and window, or per run and window: bound methods applied with
        # map(call, ...), which needs no Python frame of its own (a comprehension does, in 3.11).
        self._creates = tuple(p.create for p in parts)
        self._adds = tuple(p.add for p in parts)
        self._ranges = tuple(p.add_range for p in parts)
        self._results = tuple(p.result for p in parts)
        self.atomic_ranges = all(p.atomic_ranges for p in parts)
        # prepare() plan: one prepare per distinct extractor; part i reads _prepared_by[i].
        firsts: dict[Any, int] = {}
        prepares: list[Callable[[Sequence[E]], Any]] = []
        by: list[int] = []
        for p in parts:
            of = p.of if isinstance(p, _Extracting) else object()  # object(): never shared
            if of not in firsts:
                firsts[of] = len(prepares)
                prepares.append(p.prepare)
            by.append(firsts[of])
        self._prepares = tuple(prepares)
        self._prepared_by = tuple(by)
        # When every part is a built-in that folds a list slice (Count, Sum, Mean, Min, Max),
        # each distinct extraction is sliced once per window and shared by its parts.
        self._slice_adds: tuple[Callable[[Any, Sequence[Any]], Any], ...] | None = None
        if parts and all(isinstance(p, Count | _Extracting) for p in parts):
            self._slice_adds = tuple(cast(Any, p)._add_values for p in parts)

    @override
    def create(self) -> Acc:
        return cast(Acc, tuple(map(call, self._creates)))

    @override
    def add(self, acc: Acc, value: E) -> Acc:
        accs = cast(tuple[Any, ...], acc)
        return cast(Acc, tuple(map(call, self._adds, accs, repeat(value, len(accs)))))

    @override
    def prepare(self, values: Sequence[E]) -> tuple[Any, ...]:
        # Parts extracting with the same function (Sum(f), Max(f)) share one extraction: the
        # result holds, per part, what it reads (the same list for parts that share).
        done = tuple(map(call, self._prepares, repeat(values, len(self._prepares))))
        return tuple(map(done.__getitem__, self._prepared_by))

    @override
    def add_range(self, acc: Acc, prepared: Any, lo: int, hi: int) -> Acc:
        accs = cast(tuple[Any, ...], acc)
        slice_adds = self._slice_adds
        if slice_adds is not None:
            # A whole run (a tumbling window's usual case) needs no copies.
            if hi - lo != len(prepared[0]):
                prepared = map(getitem, prepared, repeat(slice(lo, hi)))
            return cast(Acc, tuple(map(call, slice_adds, accs, prepared)))
        n = len(accs)
        return cast(Acc, tuple(map(call, self._ranges, accs, prepared, repeat(lo, n),
                                   repeat(hi, n))))

    @override
    def merge(self, a: Acc, b: Acc) -> Acc:
        pairs = zip(self.parts, cast(tuple[Any, ...], a), cast(tuple[Any, ...], b), strict=True)
        return cast(Acc, tuple(p.merge(x, y) for p, x, y in pairs))

    @override
    def result(self, acc: Acc) -> Out:
        return cast(Out, tuple(map(call, self._results, cast(tuple[Any, ...], acc))))
