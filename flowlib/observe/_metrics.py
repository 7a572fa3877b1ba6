"""Prometheus metrics of a run, read from its :class:`Counters` at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from flowlib.engine._counters import Counters
from flowlib.engine._live_stats import Histogram

__all__ = ["CountersCollector", "MetricsServer"]

# (metric name without _total, StepCounts attribute, help)
_METRICS = (
    ("flowlib_records_in", "records_in", "Records a step received."),
    ("flowlib_records_out", "records_out", "Records a step produced."),
    ("flowlib_dead_letters", "dead_letters", "Records a step sent to the dead-letter output."),
    ("flowlib_late_events", "late", "Events a step received behind the watermark."),
)


class CountersCollector(Collector):
    """A run's metrics: per-step counters labelled by flow, step and kind; per-step batch
    latency, state keys and watermark; the checkpoints of this process.

    Reads the counters and key groups on each scrape, so the running flow pays nothing but the
    timing of its batches.
    """

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        c = self._counters
        report = c.report(0.0)
        flow = report.flow
        for name, attr, doc in _METRICS:
            family = CounterMetricFamily(name, doc, labels=["flow", "step", "kind"])
            for s in report.steps:
                family.add_metric([flow, s.step, s.kind], getattr(s, attr))
            yield family
        latency = HistogramMetricFamily(
            "flowlib_processing_latency_seconds",
            "Seconds a step took for one batch: a source to read it, a sink to write it, a "
            "keyed step's key groups to process it (those of one worker; with checkpoints, "
            "one key group's share).",
            labels=["flow", "step"],
        )
        for step, h in c.latencies().items():
            latency.add_metric([flow, step], _buckets(h), h.sum)
        yield latency
        yield _per_step("flowlib_state_keys", "Keys in a keyed step's state.", flow,
                        c.groups.state_keys())
        now = time.time()
        marks = {step: w.timestamp() for step, w in c.groups.watermarks().items()}
        yield _per_step(
            "flowlib_watermark_seconds",
            "An event-time step's watermark (the earliest of its key groups'), as Unix time.",
            flow, marks)
        yield _per_step(
            "flowlib_watermark_lag_seconds",
            "Wall-clock time now minus an event-time step's watermark.", flow,
            {step: now - t for step, t in marks.items()})
        count, durations, total, last = c.checkpoints.summary()
        yield _of_flow(CounterMetricFamily(
            "flowlib_checkpoints", "Checkpoints for which this process snapshotted state.",
            labels=["flow"]), flow, count)
        duration = HistogramMetricFamily(
            "flowlib_checkpoint_duration_seconds",
            "Seconds this process spent snapshotting state for one checkpoint.", labels=["flow"])
        duration.add_metric([flow], _buckets(durations), durations.sum)
        yield duration
        yield _of_flow(CounterMetricFamily(
            "flowlib_checkpoint_written_bytes", "Bytes of state snapshots written in all.",
            labels=["flow"]), flow, total)
        yield _per_step(
            "flowlib_checkpoint_size_bytes",
            "Bytes of a step's state snapshots in the latest checkpoint (its key groups that "
            "changed).", flow, last.bytes_by_step if last is not None else {})


def _per_step(name: str, doc: str, flow: str, values: Mapping[str, float]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=["flow", "step"])
    for step, v in values.items():
        family.add_metric([flow, step], v)
    return family


def _of_flow(family: CounterMetricFamily, flow: str, value: float) -> Metric:
    family.add_metric([flow], value)
    return family


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    return [("+Inf" if b == float("inf") else repr(b), n) for b, n in h.cumulative()]


class MetricsServer:
    """An HTTP server of Prometheus text for ``counters`` on ``host:port``, until :meth:`close`."""

    def __init__(self, counters: Counters, port: int, host: str = "127.0.0.1") -> None:
        # A registry of our own: the default one would add process/GC metrics of the
        # interpreter and keep our collector alive across runs in one process.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CountersCollector(counters))
        counters.timed = True  # batch latencies are measured only when someone reads them
        self._server, self._thread = start_http_server(port, host, registry=self.registry)

    @property
    def host(self) -> str:
        """The address bound."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port served (useful when asked for port 0)."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
