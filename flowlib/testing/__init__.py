"""Testing kit: unit-test processors, run whole flows in tests, property tests, pytest plugin.

- :class:`ProcessorHarness` drives one processor through the engine's own key-group runtime
  with a virtual clock; :func:`run_flow` runs a whole flow in process with test inputs (two
  workers, crash and resume); :func:`assert_outputs` fails with a field-by-field diff;
  :class:`CrashAfter` ends a flow's process abruptly for crash tests of scripts.
- :mod:`flowlib.testing.strategies` (needs hypothesis) draws values of any annotated type;
  :mod:`flowlib.testing.properties` checks snapshot/restore, order and engine agreement.
- :mod:`flowlib.testing.plugin` is a pytest plugin (installed with flowlib): fixtures
  ``harness``, ``flow_runner``, ``recovery_dir``, and typed diffs in assertion failures.

See ``docs/testing.md``.
"""

from flowlib.testing._diff import OutputMismatch, assert_outputs, diff_outputs
from flowlib.testing._faults import CrashAfter
from flowlib.testing._harness import (
    EngineRun,
    HarnessFactory,
    HarnessSnapshot,
    ProcessorHarness,
    StateView,
    VirtualClock,
)
from flowlib.testing._run import FlowResult, FlowRunner, Inputs, run_flow
from flowlib.testing._source import SimulatedCrash, TestSource

__all__ = [
    "CrashAfter",
    "EngineRun",
    "FlowResult",
    "FlowRunner",
    "HarnessFactory",
    "HarnessSnapshot",
    "Inputs",
    "OutputMismatch",
    "ProcessorHarness",
    "SimulatedCrash",
    "StateView",
    "TestSource",
    "VirtualClock",
    "assert_outputs",
    "diff_outputs",
    "run_flow",
]
