"""The engine: compiles flows to bytewax and runs them. Only this package imports bytewax."""

from flowlib.engine._counters import RunReport, StepCounts
from flowlib.engine._run import run

__all__ = ["RunReport", "StepCounts", "run"]
