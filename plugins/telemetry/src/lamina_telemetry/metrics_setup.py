"""The meter provider: metric readers from the config's sinks (OTLP push; Prometheus is pulled)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from lamina_telemetry.config import TelemetryConfig, TelemetrySink

# How long one OTLP metrics export may retry a collector that is down or failing (seconds).
# OpenTelemetry's default is 10 s; the last export runs at shutdown, and a server sitting out 10 s of
# retries to a dead collector outlived its supervisor's stop timeout and was killed. Exports run in
# the reader's thread, never in a request. OTEL_EXPORTER_OTLP[_METRICS]_TIMEOUT still override it.
OTLP_EXPORT_TIMEOUT_S = 4.0


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
    return MeterProvider(resource=resource, metric_readers=all_readers)
