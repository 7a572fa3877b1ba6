"""Runtime type helpers for build-time checks: naming types, deciding whether one fits another."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, TypeVar, get_args, get_origin

__all__ = ["fits", "parameter_types", "processor_types", "return_type", "type_name"]


def type_name(tp: object) -> str:
    """A short readable name: ``LogLine``, ``tuple[str, int]``, ``int | None``."""
    if tp is Any:
        return "Any"
    if isinstance(tp, TypeVar):
        return tp.__name__
    if isinstance(tp, type) and not get_args(tp):
        return tp.__qualname__
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in get_args(tp)) + "]"
    if origin is not None:
        base = getattr(origin, "__qualname__", repr(origin))
        return f"{base}[{', '.join(type_name(a) for a in get_args(tp))}]"
    return repr(tp)


def _unknown(tp: object) -> bool:
    return tp is Any or tp is object or isinstance(tp, TypeVar)


def fits(actual: object, expected: object) -> bool:
    """Whether a stream carrying ``actual`` may feed a step that expects ``expected``.

    Unknown types (``Any``, unbound type variables, lambdas' results) always fit: only what is
    declared can be checked.
    """
    if _unknown(actual) or _unknown(expected) or actual == expected:
        return True
    exp_origin = get_origin(expected)
    if exp_origin in (typing.Union, types.UnionType):
        return any(fits(actual, e) for e in get_args(expected))
    act_origin = get_origin(actual)
    if act_origin in (typing.Union, types.UnionType):
        return all(fits(a, expected) for a in get_args(actual))
    if act_origin is typing.Literal:
        return all(fits(type(v), expected) for v in get_args(actual))
    if isinstance(actual, type) and isinstance(expected, type):
        return issubclass(actual, expected) or (expected is float and actual is int)
    if act_origin is not None and exp_origin is not None:
        a_args, e_args = get_args(actual), get_args(expected)
        if not (isinstance(act_origin, type) and isinstance(exp_origin, type)):
            return bool(act_origin == exp_origin)
        if not issubclass(act_origin, exp_origin) or len(a_args) != len(e_args):
            return False
        return all(fits(a, e) for a, e in zip(a_args, e_args, strict=True))
    if isinstance(actual, type) and isinstance(exp_origin, type):
        # A bare generic class leaves its arguments unknown: only the class can be checked.
        return issubclass(actual, exp_origin)
    if act_origin is not None and isinstance(expected, type):
        return isinstance(act_origin, type) and issubclass(act_origin, expected)
    return False


def processor_types(cls: type, base: type) -> tuple[object, ...]:
    """The type arguments ``cls`` gives the generic ``base`` (``Any`` where it leaves them open).

    Walks ``__orig_bases__`` up the class hierarchy, substituting type variables bound by
    intermediate generic classes.
    """
    params = getattr(base, "__parameters__", ())
    found = _find(cls, base, {})
    if found is None:
        return tuple(Any for _ in params)
    # An argument still holding type variables (dict[int, Acc]) is not known at runtime.
    return tuple(Any if _open(a) else a for a in found)


def _open(tp: object) -> bool:
    return isinstance(tp, TypeVar) or bool(getattr(tp, "__parameters__", ()))


def _find(cls: type, base: type, subst: dict[Any, object]) -> tuple[object, ...] | None:
    for orig in getattr(cls, "__orig_bases__", ()):
        origin = get_origin(orig) or orig
        args = tuple(subst.get(a, a) for a in get_args(orig))
        if origin is base:
            params = getattr(base, "__parameters__", ())
            defaults = tuple(
                getattr(p, "__default__", Any) for p in params[len(args) :]
            )
            return args + tuple(Any if _no_default(d) else d for d in defaults)
        if isinstance(origin, type) and issubclass(origin, base):
            inner = dict(zip(getattr(origin, "__parameters__", ()), args, strict=False))
            found = _find(origin, base, inner)
            if found is not None:
                return found
    return None


def _no_default(d: object) -> bool:
    return d is None or type(d).__name__ == "NoDefaultType"


def return_type(fn: object) -> object:
    """The declared return type of a function or callable object; ``Any`` when undeclared."""
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__
    try:
        return typing.get_type_hints(target).get("return", Any)
    except Exception:  # unresolvable hints only lose the build-time check
        return Any


def parameter_types(fn: object) -> list[object]:
    """The declared types of the parameters of a function or callable object, in order."""
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        return []
    return [t for name, t in hints.items() if name != "return"]
