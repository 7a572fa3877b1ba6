"""Every Python block of docs/testing.md runs, in order, and so do the tests it defines."""

from __future__ import annotations

import inspect
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path

from flowlib.testing import FlowRunner
from flowlib.testing.plugin import _Factory

DOC = Path(__file__).resolve().parents[3] / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_the_testing_page_runs(tmp_path: Path) -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 8
    # A real module, so dataclasses and type hints of the page resolve their names.
    module = types.ModuleType("testing_page")
    sys.modules[module.__name__] = module
    try:
        for i, block in enumerate(blocks):
            code = compile(block, f"{DOC.name}[block {i}]", "exec")
            exec(code, module.__dict__)
        fixtures: dict[str, Callable[[], object]] = {
            "harness": _Factory,
            "flow_runner": lambda: FlowRunner(tmp_path),
            "recovery_dir": lambda: tmp_path / "recovery",
        }
        tests: list[tuple[str, Callable[..., object]]] = [
            (name, fn) for name, fn in vars(module).items()
            if name.startswith("test_") and callable(fn)
        ]
        assert len(tests) >= 3
        for _, fn in tests:
            params = inspect.signature(fn).parameters
            fn(**{p: fixtures[p]() for p in params})
    finally:
        del sys.modules[module.__name__]
