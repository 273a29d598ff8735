"""The tracer provider: sampler, span processors and exporters from the config's sinks.

Exports never hold a request up: spans are queued (bounded: a full queue drops spans, counted) and
sent in batches by the SDK's worker thread; an OTLP export gives up after ``EXPORT_TIMEOUT_SECONDS``.
A collector that is down, slow or failing is logged once when exports start failing and once when
they recover (``telemetry_export_failing``/``telemetry_export_recovered``), never once per batch.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from lamina_telemetry.config import TelemetryConfig, TelemetrySink

log = structlog.get_logger("lamina.telemetry")

# A batch export's bound, retries included: a slow collector delays the next batch, never a request.
EXPORT_TIMEOUT_SECONDS = 5.0
MAX_QUEUE_SIZE = 4096  # spans waiting for export; beyond it new spans are dropped
MAX_EXPORT_BATCH_SIZE = 512
SCHEDULE_DELAY_MILLIS = 1000
# The OTLP exporter logs each failed batch (and its retries) itself; ExportLog says it once instead.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http",
)


class ExportLog(SpanExporter):
    """``exporter`` whose failures are logged on the change (failing, recovered), with the endpoint."""

    def __init__(self, exporter: SpanExporter, sink: str, endpoint: str) -> None:
        self.exporter = exporter
        self.sink = sink
        self.endpoint = endpoint
        self.failing = False
        self.failed_batches = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        error = None
        try:
            result = self.exporter.export(spans)
        except Exception as exc:  # the SDK's worker would log it per batch
            result, error = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        with self._lock:
            if result is SpanExportResult.FAILURE:
                self.failed_batches += 1
                if not self.failing:
                    self.failing = True
                    log.warning(
                        "telemetry_export_failing",
                        sink=self.sink,
                        endpoint=self.endpoint,
                        error=error or "the collector refused, timed out or is unreachable",
                        hint="spans are dropped until it answers again; requests are not affected",
                    )
            elif self.failing:
                self.failing = False
                log.info(
                    "telemetry_export_recovered",
                    sink=self.sink,
                    endpoint=self.endpoint,
                    lost=self.failed_batches,
                )
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def batched(exporter: SpanExporter) -> BatchSpanProcessor:
    return BatchSpanProcessor(
        exporter,
        max_queue_size=MAX_QUEUE_SIZE,
        schedule_delay_millis=SCHEDULE_DELAY_MILLIS,
        max_export_batch_size=MAX_EXPORT_BATCH_SIZE,
        export_timeout_millis=int(EXPORT_TIMEOUT_SECONDS * 1000),
    )


def build_tracer_provider(
    config: TelemetryConfig,
    processors: Sequence[SpanProcessor] = (),
    store: Mapping[str, Any] | None = None,
) -> Any:
    """A TracerProvider for ``config``: a caller's sampling decision is followed, new traces are sampled
    at ``sampling_ratio``; ``processors`` come first, then the config's sinks. ``store`` (the trace
    store's resolved config, as JSON) has the export worker write span rows to the trace store.
    ``config.tracer == "lean"`` gives lean_tracer's provider (the SDK's when the console sink is on:
    it formats the SDK's spans)."""
    provider: Any
    if config.tracer == "lean" and TelemetrySink.CONSOLE not in config.sinks:
        from lamina_telemetry.lean_tracer import LeanTracerProvider

        provider = LeanTracerProvider(config.service_name, config.sampling_ratio)
    else:
        provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sampling_ratio)),
        )
    for processor in processors:
        provider.add_span_processor(processor)
    otlp = TelemetrySink.OTEL_TRACE in config.sinks
    if otlp or store is not None:
        # Encoded and posted, and written to the trace store, by a child process (export_worker): each
        # cost the gateway ~50 µs a request here.
        from lamina_telemetry.export_worker import PipeSpanProcessor

        provider.add_span_processor(
            PipeSpanProcessor(
                config.otel_trace_endpoint if otlp else None,
                provider.resource.attributes,
                timeout=EXPORT_TIMEOUT_SECONDS,
                store=store,
                ttl_seconds=config.ttl_seconds,
                max_queue=MAX_QUEUE_SIZE,
                batch=MAX_EXPORT_BATCH_SIZE,
                interval=SCHEDULE_DELAY_MILLIS / 1000,
            )
        )
    if TelemetrySink.CONSOLE in config.sinks:
        # One JSON line per span on stderr (stdout may be a pipe someone parses).
        console = ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(batched(console))
    return provider


def span_pipe(tracer_provider: Any) -> Any:
    """``tracer_provider``'s export-worker processor (export_worker.PipeSpanProcessor), or None (no OTLP and
    no store sink). Both providers keep their processors privately: the lean one in ``_processors``, the
    SDK's behind its multi-processor."""
    from lamina_telemetry.export_worker import PipeSpanProcessor

    processors = getattr(tracer_provider, "_processors", None)  # lean_tracer's provider
    if processors is None:
        processors = tracer_provider._active_span_processor._span_processors  # the SDK's
    return next((p for p in processors if isinstance(p, PipeSpanProcessor)), None)
