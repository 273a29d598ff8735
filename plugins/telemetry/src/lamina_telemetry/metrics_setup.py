"""The meter provider: metric readers from the config's sinks (OTLP push; Prometheus is pulled), and the
server's own metrics handed to every reader at each collection.

The core aggregates its hot-path metrics itself (lamina.telemetry.aggregates: a microsecond a
measurement instead of the SDK's 7-19 µs). :class:`LaminaMeterProvider` is the SDK's MeterProvider
whose readers, when they collect, also get those aggregates as ordinary OpenTelemetry points, in each
reader's temporality (cumulative for Prometheus and OTLP; delta for the trace store's reader).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from lamina.telemetry import metrics
from lamina.telemetry.aggregates import HistogramState, Snapshot
from lamina_telemetry.config import TelemetryConfig, TelemetrySink

# How long one OTLP metrics export may retry a collector that is down or failing (seconds).
# OpenTelemetry's default is 10 s; the last export runs at shutdown, and a server sitting out 10 s of
# retries to a dead collector outlived its supervisor's stop timeout and was killed. Exports run in
# the reader's thread, never in a request. OTEL_EXPORTER_OTLP[_METRICS]_TIMEOUT still override it.
OTLP_EXPORT_TIMEOUT_S = 4.0

_SCOPE = InstrumentationScope("lamina")
CUMULATIVE = AggregationTemporality.CUMULATIVE
DELTA = AggregationTemporality.DELTA


def build_meter_provider(config: TelemetryConfig, readers: Sequence[MetricReader] = ()) -> MeterProvider:
    """A MeterProvider for ``config`` with ``readers`` (the trace store's, Prometheus') and the OTLP sink."""
    all_readers = list(readers)
    if TelemetrySink.OTEL_METRIC in config.sinks:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        env_timeout = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TIMEOUT"
        )
        exporter = OTLPMetricExporter(
            endpoint=config.otel_metric_endpoint, timeout=None if env_timeout else OTLP_EXPORT_TIMEOUT_S
        )
        all_readers.append(PeriodicExportingMetricReader(exporter))
    resource = Resource.create({"service.name": config.service_name})
    return LaminaMeterProvider(resource=resource, metric_readers=all_readers)


class LaminaMeterProvider(MeterProvider):
    """An SDK MeterProvider whose readers also collect the core's aggregates (lamina.telemetry.metrics)."""

    collects_lamina_aggregates = True  # the core then records into its aggregates only

    def __init__(
        self, *, resource: Resource | None = None, metric_readers: Sequence[MetricReader] = ()
    ) -> None:
        self._lamina_resource = resource or Resource.create({})
        self._lamina_started_ns = time.time_ns()
        self._lamina_lock = threading.Lock()
        self._lamina_last: dict[MetricReader, tuple[int, dict[tuple[str, Any], Any]]] = {}
        super().__init__(resource=self._lamina_resource, metric_readers=metric_readers)
        for reader in metric_readers:
            self._lamina_wrap(reader)

    def add_metric_reader(self, metric_reader: MetricReader) -> None:
        super().add_metric_reader(metric_reader)
        self._lamina_wrap(metric_reader)

    def _lamina_wrap(self, reader: MetricReader) -> None:
        # The SDK gives each reader one callback that returns its MetricsData (MeterProvider sets it when
        # the reader is added); ours returns the same with the core's points appended.
        sdk_collect = reader._collect

        def collect(metric_reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
            data = sdk_collect(metric_reader, timeout_millis=timeout_millis) if sdk_collect else None
            extra = self._lamina_points(metric_reader)
            if not extra:
                return data
            scope = ScopeMetrics(scope=_SCOPE, metrics=extra, schema_url="")
            if data is None or not data.resource_metrics:
                return MetricsData([ResourceMetrics(self._lamina_resource, [scope], schema_url="")])
            first, *rest = data.resource_metrics
            merged = ResourceMetrics(first.resource, [*first.scope_metrics, scope], first.schema_url)
            return MetricsData([merged, *rest])

        reader._set_collect_callback(collect)

    def _lamina_points(self, reader: MetricReader) -> list[Metric]:
        snapshots = metrics.snapshot(self)
        if not snapshots:
            return []
        temporality = _temporalities(reader)
        now = time.time_ns()
        with self._lamina_lock:  # a reader's delta state: its collections may overlap a shutdown's
            last_ns, previous = self._lamina_last.get(reader, (self._lamina_started_ns, {}))
            current: dict[tuple[str, Any], Any] = {}
            out = [
                metric
                for snap in snapshots
                if (
                    metric := _metric(
                        snap, temporality, self._lamina_started_ns, last_ns, now, previous, current
                    )
                )
                is not None
            ]
            self._lamina_last[reader] = (now, current)
        return out


def _temporalities(reader: MetricReader) -> dict[str, AggregationTemporality]:
    """The reader's temporality for each kind of the core's instruments."""
    chosen = {"histogram": CUMULATIVE, "counter": CUMULATIVE, "updown": CUMULATIVE}
    for cls, temporality in reader._instrument_class_temporality.items():
        for kind, base in (("histogram", Histogram), ("counter", Counter), ("updown", UpDownCounter)):
            if isinstance(cls, type) and issubclass(cls, base):
                chosen[kind] = temporality
    return chosen


def _metric(
    snap: Snapshot,
    temporality: dict[str, AggregationTemporality],
    started_ns: int,
    last_ns: int,
    now: int,
    previous: dict[tuple[str, Any], Any],
    current: dict[tuple[str, Any], Any],
) -> Metric | None:
    if not snap.points:
        return None
    if snap.kind == "gauge":
        points = [NumberDataPoint(attrs, now, now, value) for attrs, value in snap.points]
        return Metric(snap.name, snap.description, snap.unit, Gauge(points))
    delta = temporality[snap.kind] == DELTA
    start = last_ns if delta else started_ns
    if snap.kind == "histogram":
        hist_points = []
        for attrs, state in snap.points:
            key = (snap.name, frozenset(attrs.items()))
            current[key] = state
            shown = _histogram_delta(state, previous.get(key)) if delta else state
            if delta and shown.count == 0:
                continue
            hist_points.append(
                HistogramDataPoint(
                    attrs,
                    start,
                    now,
                    shown.count,
                    shown.sum,
                    list(shown.bucket_counts),
                    list(snap.bounds),
                    shown.min,
                    shown.max,
                )
            )
        if not hist_points:
            return None
        return Metric(
            snap.name, snap.description, snap.unit, HistogramData(hist_points, temporality["histogram"])
        )
    sum_points = []
    for attrs, value in snap.points:
        key = (snap.name, frozenset(attrs.items()))
        current[key] = value
        shown_value = value - previous.get(key, 0) if delta else value
        sum_points.append(NumberDataPoint(attrs, start, now, shown_value))
    return Metric(
        snap.name,
        snap.description,
        snap.unit,
        Sum(sum_points, temporality[snap.kind], snap.kind == "counter"),
    )


def _histogram_delta(state: HistogramState, before: HistogramState | None) -> HistogramState:
    """What ``state`` added since ``before`` (min and max stay the cumulative ones: the delta's own are
    not kept; Prometheus and the trace store read neither)."""
    if before is None:
        return state
    counts = tuple(a - b for a, b in zip(state.bucket_counts, before.bucket_counts, strict=True))
    return HistogramState(counts, state.count - before.count, state.sum - before.sum, state.min, state.max)
