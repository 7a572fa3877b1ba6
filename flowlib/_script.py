"""Loading the flow a user's script defines: ``SCRIPT[:VARIABLE]``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from flowlib.errors import FlowlibError
from flowlib.flow import Flow

__all__ = ["ScriptError", "load_flow", "split_target"]


class ScriptError(FlowlibError):
    """The script or variable given to ``flowlib run`` cannot provide a flow."""


def split_target(target: str) -> tuple[Path, str]:
    """``examples/x.py:my_flow`` -> (path, ``my_flow``); the variable defaults to ``flow``."""
    path, sep, var = target.rpartition(":")
    if not sep or not var.isidentifier():
        return Path(target), "flow"
    return Path(path), var


def load_flow(target: str, argv: list[str]) -> Flow:
    """Execute the script with ``sys.argv = [script, *argv]`` and return its flow variable.

    The variable may hold a :class:`Flow` or a function of no arguments returning one.
    """
    path, var = split_target(target)
    if not path.is_file():
        msg = f"script not found: {path}"
        raise ScriptError(msg)
    spec = importlib.util.spec_from_file_location(f"__flowlib_script_{path.stem}", path)
    if spec is None or spec.loader is None:
        msg = f"cannot load {path} as a Python script"
        raise ScriptError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses defined in the script need their module
    saved_argv = sys.argv
    sys.argv = [str(path), *argv]
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, var):
            flows = [k for k, v in vars(module).items() if isinstance(v, Flow)]
            hint = f"; it defines {', '.join(flows)}" if flows else ""
            msg = f"{path} has no variable {var!r}{hint}"
            raise ScriptError(msg)
        value = getattr(module, var)
        if callable(value) and not isinstance(value, Flow):
            value = value()  # a flow factory sees the script's arguments too
    finally:
        sys.argv = saved_argv
    if not isinstance(value, Flow):
        msg = f"{path}:{var} is a {type(value).__name__}, not a flowlib Flow"
        raise ScriptError(msg)
    return value
