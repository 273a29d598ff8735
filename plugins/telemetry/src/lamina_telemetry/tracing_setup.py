"""The tracer provider: sampler, span processors and exporters from the config's sinks."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from lamina_telemetry.config import TelemetryConfig, TelemetrySink


def build_tracer_provider(
    config: TelemetryConfig, processors: Sequence[SpanProcessor] = ()
) -> TracerProvider:
    """A TracerProvider for ``config``: a caller's sampling decision is followed, new traces are sampled
    at ``sampling_ratio``; ``processors`` (the trace store's) come first, then the config's sinks."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service_name}),
        sampler=ParentBased(TraceIdRatioBased(config.sampling_ratio)),
    )
    for processor in processors:
        provider.add_span_processor(processor)
    if TelemetrySink.OTEL_TRACE in config.sinks:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otel_trace_endpoint)))
    if TelemetrySink.CONSOLE in config.sinks:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider
