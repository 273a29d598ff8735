"""The inline::meta-reference telemetry provider: builds the OpenTelemetry SDK providers from its config
and activates the core's telemetry with them (lamina.telemetry); serves Llama Stack's telemetry API from
its trace store.

The trace store (the ``sqlite`` sink: ``sqlite_db_path``, or ``trace_store`` for PostgreSQL) gets every
finished span through ``StoreSpanProcessor`` and the server's metrics through a periodic reader with
``StoreMetricExporter`` (``lamina_telemetry.store_writer``). ``log_event`` writes to it directly:

- ``unstructured_log``: kept in the store's events, by its trace and span ids, for ``ttl_seconds``;
- ``metric``: a metric point (labels: the event's attributes) that ``query_metrics`` answers;
- ``structured_log`` ``span_start``: a span with the client's own ids, open until ``span_end`` closes it
  with its status (attributes of both merged); a ``span_end`` with no open span of those ids is a 404.
  Such spans are in the store only (the OTLP and console sinks carry the server's own spans).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from lamina.apis.datasets import AppendRowsRequest
from lamina.apis.telemetry import (
    GetSpanRequest,
    GetSpanTreeRequest,
    GetTraceRequest,
    LogEventRequest,
    MetricEvent,
    QueryMetricsRequest,
    QueryMetricsResponse,
    QuerySpansRequest,
    QuerySpansResponse,
    QuerySpanTreeResponse,
    QueryTracesRequest,
    QueryTracesResponse,
    SaveSpansToDatasetRequest,
    Span,
    SpanStartPayload,
    StructuredLogEvent,
    Trace,
    UnstructuredLogEvent,
)
from lamina.errors import BadRequestError, NotFoundError, ServiceUnavailableError
from lamina.providers import ProviderBase, ProviderContext
from lamina.specs import Api
from lamina.telemetry import TelemetrySettings, activate, deactivate
from lamina_telemetry import queries
from lamina_telemetry.config import TelemetryConfig, TelemetrySink
from lamina_telemetry.metrics_setup import build_meter_provider
from lamina_telemetry.prometheus import build_prometheus
from lamina_telemetry.store import MetricPoint, SpanRow, TraceStore, open_trace_store, trace_store_config
from lamina_telemetry.store_writer import StoreMetricExporter, StoreWriter
from lamina_telemetry.tracing_setup import build_tracer_provider, span_pipe

log = structlog.get_logger(__name__)

#: how often the server's metrics are written to the trace store (query_metrics also collects first)
METRIC_EXPORT_INTERVAL_MS = 10_000


async def create_provider(
    config: TelemetryConfig, deps: dict[Any, Any], context: ProviderContext
) -> TelemetryProvider:
    return TelemetryProvider(config, deps, context)


def _ns(moment: datetime) -> int:
    if moment.tzinfo is None:  # a client's naive time is UTC, as Llama Stack's clients send it
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000_000)


class TelemetryProvider(ProviderBase):
    def __init__(self, config: TelemetryConfig, deps: dict[Any, Any], context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.deps = deps
        self.tracer_provider: Any = None
        self.meter_provider: Any = None
        self.store: TraceStore | None = None
        self.writer: StoreWriter | None = None
        self.metric_reader: PeriodicExportingMetricReader | None = None
        self.span_pipe: Any = None  # the export worker's processor (it writes the span rows to the store)

    async def initialize(self) -> None:
        readers = []
        store_for_worker = None  # the span rows are written by the export worker (export_worker.py)
        if TelemetrySink.SQLITE in self.config.sinks:
            default_db = self.context.state_dir / "trace_store.db"
            raw = self.config.trace_store
            if raw is None and self.config.sqlite_db_path:
                raw = {"type": "sqlite", "db_path": self.config.sqlite_db_path}
            resolved = trace_store_config(raw, default_db)
            self.store = await open_trace_store(resolved)
            store_for_worker = resolved.model_dump(mode="json")
            self.writer = StoreWriter(self.store, ttl_seconds=self.config.ttl_seconds)
            await self.writer.start()
            self.metric_reader = PeriodicExportingMetricReader(
                StoreMetricExporter(self.writer), export_interval_millis=METRIC_EXPORT_INTERVAL_MS
            )
            readers.append(self.metric_reader)
            log.info("trace_store_opened", store=self.store.where, ttl_seconds=self.config.ttl_seconds)
        prometheus = build_prometheus(self.config)  # None when the config turns Prometheus off
        if prometheus is not None:
            readers.append(prometheus.reader)
        self.tracer_provider = build_tracer_provider(self.config, store=store_for_worker)
        self.span_pipe = span_pipe(self.tracer_provider)
        self.meter_provider = build_meter_provider(self.config, readers)
        activate(
            TelemetrySettings(
                tracer_provider=self.tracer_provider,
                meter_provider=self.meter_provider,
                capture_content=self.config.capture_content,
                service_name=self.config.service_name,
                prometheus_exposition=prometheus.exposition if prometheus is not None else None,
            )
        )

    async def shutdown(self) -> None:
        deactivate()
        # Flushes what the batch processors hold (bounded by their export timeouts); the meter provider's
        # last collection puts the final metric deltas on the store writer's queue, written below.
        if self.tracer_provider is not None:
            await asyncio.to_thread(self.tracer_provider.shutdown)
        if self.meter_provider is not None:
            await asyncio.to_thread(self.meter_provider.shutdown)
        if self.writer is not None:
            await self.writer.close()
        if self.store is not None:
            await self.store.close()

    async def health(self) -> dict[str, Any]:
        if self.writer is not None and self.span_pipe is not None:
            await asyncio.to_thread(self.span_pipe.flush_store, 10.0)  # its answer brings the worker's error
        error = (self.writer.last_error if self.writer is not None else None) or (
            self.span_pipe.store_error if self.span_pipe is not None and self.writer is not None else None
        )
        if error is not None:
            return {"status": "Error", "message": f"trace store writes fail: {error}"}
        return {"status": "OK"}

    # -- the store -------------------------------------------------------------------------------

    async def _fresh_store(self) -> TraceStore:
        """The store, with every span queued so far written (a query sees the requests before it)."""
        if self.store is None or self.writer is None:
            raise ServiceUnavailableError(
                f"telemetry provider '{self.provider_id}' keeps no trace store: add sqlite to its sinks "
                f"(providers.telemetry[].config.sinks; trace_store picks PostgreSQL instead of the file)"
            )
        if self.span_pipe is not None:
            await asyncio.to_thread(self.span_pipe.flush_store)
        await self.writer.flush()
        return self.store

    def _expires(self, ttl_seconds: int) -> int:
        return time.time_ns() + ttl_seconds * 1_000_000_000

    # -- the Telemetry API -----------------------------------------------------------------------

    async def log_event(self, request: LogEventRequest) -> None:
        store = await self._fresh_store()
        event = request.event
        expires = self._expires(request.ttl_seconds)
        attributes = dict(event.attributes or {})
        if isinstance(event, UnstructuredLogEvent):
            await store.add_event(
                event.trace_id,
                event.span_id,
                _ns(event.timestamp),
                event.severity.value,
                event.message,
                attributes,
                expires,
            )
        elif isinstance(event, MetricEvent):
            labels = {k: str(v) for k, v in attributes.items()}
            point = MetricPoint(
                event.metric, labels, _ns(event.timestamp), event.value, "sum", event.unit, expires
            )
            await store.add_points([point])
        elif isinstance(event, StructuredLogEvent):
            await self._structured(store, event, attributes, expires)

    async def _structured(
        self, store: TraceStore, event: StructuredLogEvent, attributes: dict[str, Any], expires: int
    ) -> None:
        # A W3C traceparent says the span continues a trace started elsewhere: not a root here.
        remote_parent = attributes.pop("traceparent", None)
        attributes.pop("tracestate", None)
        payload = event.payload
        if isinstance(payload, SpanStartPayload):
            row = SpanRow(
                trace_id=event.trace_id,
                span_id=event.span_id,
                parent_span_id=payload.parent_span_id,
                root=payload.parent_span_id is None and remote_parent is None,
                name=payload.name,
                start_ns=_ns(event.timestamp),
                end_ns=None,
                status=None,
                attributes=attributes,
                service=self.config.service_name,
                expires_ns=expires,
            )
            await store.add_spans([row])
            return
        ended = await store.end_span(
            event.trace_id, event.span_id, _ns(event.timestamp), payload.status.value, attributes
        )
        if not ended:
            raise NotFoundError(
                f"event.span_id: no open span '{event.span_id}' in trace '{event.trace_id}' to end; log its "
                f"span_start first (a span ends once)",
                param="event.span_id",
            )

    async def query_traces(self, request: QueryTracesRequest) -> QueryTracesResponse:
        store = await self._fresh_store()
        traces = await queries.query_traces(
            store,
            request.attribute_filters,
            100 if request.limit is None else request.limit,
            request.offset or 0,
            request.order_by,
        )
        return QueryTracesResponse(data=traces)

    async def get_trace(self, request: GetTraceRequest) -> Trace:
        return await queries.get_trace(await self._fresh_store(), request.trace_id)

    async def get_span(self, request: GetSpanRequest) -> Span:
        return await queries.get_span(await self._fresh_store(), request.trace_id, request.span_id)

    async def get_span_tree(self, request: GetSpanTreeRequest) -> QuerySpanTreeResponse:
        tree = await queries.get_span_tree(
            await self._fresh_store(), request.span_id, request.attributes_to_return, request.max_depth
        )
        return QuerySpanTreeResponse(data=tree)

    async def query_spans(self, request: QuerySpansRequest) -> QuerySpansResponse:
        spans = await queries.query_spans(
            await self._fresh_store(),
            request.attribute_filters,
            request.attributes_to_return,
            request.max_depth,
        )
        return QuerySpansResponse(data=spans)

    async def save_spans_to_dataset(self, request: SaveSpansToDatasetRequest) -> None:
        datasetio = self.deps.get(Api.datasetio)
        if datasetio is None:
            raise BadRequestError(
                f"dataset_id: spans are saved through the DatasetIO API, and this server has no datasetio "
                f"provider; add one under providers.datasetio (e.g. inline::localfs) and register "
                f"'{request.dataset_id}'",
                param="dataset_id",
            )
        spans = await queries.query_spans(
            await self._fresh_store(),
            request.attribute_filters,
            request.attributes_to_save,
            request.max_depth,
        )
        rows = [
            {
                "trace_id": span.trace_id,
                "span_id": span.span_id,
                "parent_span_id": span.parent_span_id,
                "name": span.name,
                "start_time": span.start_time.isoformat(),
                "end_time": span.end_time.isoformat() if span.end_time else None,
                **{key: (span.attributes or {}).get(key) for key in request.attributes_to_save},
            }
            for span in spans
        ]
        try:
            await datasetio.append_rows(AppendRowsRequest(dataset_id=request.dataset_id, rows=rows))
        except NotFoundError as exc:
            raise BadRequestError(
                f"dataset_id: {exc.message}; register the dataset "
                f"(POST /v1/datasets) before saving spans to it",
                param="dataset_id",
            ) from None
        log.info("spans_saved_to_dataset", dataset_id=request.dataset_id, rows=len(rows))

    async def query_metrics(self, request: QueryMetricsRequest) -> QueryMetricsResponse:
        if self.metric_reader is not None:
            # Collect now, so the points of the requests before this query are there.
            await asyncio.to_thread(self.metric_reader.force_flush)
        series = await queries.query_metrics(await self._fresh_store(), request)
        return QueryMetricsResponse(data=series)
