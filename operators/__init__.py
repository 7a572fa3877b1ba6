"""Generic operators built on flowlib's public API."""

# Count is left out on purpose: operators.aggregate.Count (a keyed processor) and
# operators.aggregations.Count (a window aggregate) share the name; import either from its
# module.
from operators.aggregate import Aggregated, Keyed
from operators.aggregations import (
    Aggregate,
    Collect,
    First,
    Last,
    Max,
    Mean,
    Min,
    Multi,
    Percentile,
    StdDev,
    Sum,
)
from operators.windows import SessionWindows, SlidingWindows, TumblingWindows, WindowResult

__all__ = [
    "Aggregate",
    "Aggregated",
    "Collect",
    "First",
    "Keyed",
    "Last",
    "Max",
    "Mean",
    "Min",
    "Multi",
    "Percentile",
    "SessionWindows",
    "SlidingWindows",
    "StdDev",
    "Sum",
    "TumblingWindows",
    "WindowResult",
]
