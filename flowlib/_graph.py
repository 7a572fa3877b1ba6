"""The typed dataflow graph that :class:`flowlib.Flow` builds and the engine compiles."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from flowlib.connectors.base import Sink, Source
from flowlib.processor import Processor
from flowlib.state import StateBackendFactory
from flowlib.time import EventTime

__all__ = [
    "FunctionNode",
    "LateNode",
    "MergeNode",
    "Node",
    "ProcessNode",
    "SinkNode",
    "SourceNode",
]


@dataclass(eq=False)
class Node:
    """One step: a stable id, the steps it reads from, and the runtime type it produces."""

    id: str
    inputs: list[Node]
    out_type: object


@dataclass(eq=False)
class SourceNode(Node):
    source: Source[Any] = field(kw_only=True)


@dataclass(eq=False)
class FunctionNode(Node):
    """A stateless per-event function: map, filter or flat_map."""

    kind: Literal["map", "filter", "flat_map"] = field(kw_only=True)
    fn: Callable[[Any], Any] = field(kw_only=True)


@dataclass(eq=False)
class ProcessNode(Node):
    """A processor; keyed when ``key_fn`` is set, then its state lives in key groups."""

    processor: Processor[Any, Any, Any, Any] = field(kw_only=True)
    key_fn: Callable[[Any], Any] | None = field(kw_only=True)
    key_type: object = field(kw_only=True)
    state_type: object = field(kw_only=True)
    state: StateBackendFactory[Any, Any] = field(kw_only=True)
    event_time: EventTime[Any] | None = field(kw_only=True, default=None)
    late: LateNode | None = field(kw_only=True, default=None)


@dataclass(eq=False)
class LateNode(Node):
    """The late events of a keyed process step, as a stream of ``Late`` records."""


@dataclass(eq=False)
class MergeNode(Node):
    pass


@dataclass(eq=False)
class SinkNode(Node):
    sink: Sink[Any] = field(kw_only=True)


def walk(sinks: Iterable[Node]) -> list[Node]:
    """All nodes reachable upstream of ``sinks``, each once, inputs before their readers."""
    seen: set[int] = set()
    order: list[Node] = []

    def visit(n: Node) -> None:
        if id(n) in seen:
            return
        seen.add(id(n))
        for i in n.inputs:
            visit(i)
        order.append(n)

    for s in sinks:
        visit(s)
    return order
