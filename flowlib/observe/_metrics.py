"""Prometheus metrics of a run, read from its :class:`Counters` at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from flowlib.engine._counters import Counters

__all__ = ["CountersCollector", "MetricsServer"]

# (metric name without _total, StepCounts attribute, help)
_METRICS = (
    ("flowlib_records_in", "records_in", "Records a step received."),
    ("flowlib_records_out", "records_out", "Records a step produced."),
    ("flowlib_dead_letters", "dead_letters", "Records a step sent to the dead-letter output."),
    ("flowlib_late_events", "late", "Events a step received behind the watermark."),
)


class CountersCollector(Collector):
    """Per-step counters labelled by flow, step and kind.

    Reads a snapshot of the counters on each scrape, so the running flow pays nothing.
    """

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        report = self._counters.report(0.0)
        for name, attr, doc in _METRICS:
            family = CounterMetricFamily(name, doc, labels=["flow", "step", "kind"])
            for s in report.steps:
                family.add_metric([report.flow, s.step, s.kind], getattr(s, attr))
            yield family


class MetricsServer:
    """An HTTP server of Prometheus text for ``counters`` on ``host:port``, until :meth:`close`."""

    def __init__(self, counters: Counters, port: int, host: str = "127.0.0.1") -> None:
        # A registry of our own: the default one would add process/GC metrics of the
        # interpreter and keep our collector alive across runs in one process.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CountersCollector(counters))
        self._server, self._thread = start_http_server(port, host, registry=self.registry)

    @property
    def port(self) -> int:
        """The port served (useful when asked for port 0)."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
