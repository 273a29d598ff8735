"""The meter provider: metric readers from the config's sinks (OTLP push; Prometheus is pulled)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from lamina_telemetry.config import TelemetryConfig, TelemetrySink


def build_meter_provider(config: TelemetryConfig, readers: Sequence[MetricReader] = ()) -> MeterProvider:
    """A MeterProvider for ``config`` with ``readers`` (the trace store's, Prometheus') and the OTLP sink."""
    all_readers = list(readers)
    if TelemetrySink.OTEL_METRIC in config.sinks:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=config.otel_metric_endpoint)
        all_readers.append(PeriodicExportingMetricReader(exporter))
    resource = Resource.create({"service.name": config.service_name})
    return MeterProvider(resource=resource, metric_readers=all_readers)
