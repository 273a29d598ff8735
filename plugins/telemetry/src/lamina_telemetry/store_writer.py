"""Getting spans and metric points into the trace store without slowing a request.

The tracer's ``StoreSpanProcessor`` turns each finished span into its row (a tuple of strings and
numbers, about 5 µs) and appends it to a bounded in-memory queue, from whichever thread ends the span;
the metric reader's ``StoreMetricExporter`` queues points the same way. Rows, not the span objects:
queued spans (a dozen objects each, kept up to a second) made Python's garbage collector walk the
server's heap more often, about 15 µs of CPU a span more than converting at once (measured with a
300,000-object heap). A task on the event loop drains the queues every ``interval`` seconds and writes
them in one transaction per batch (the database I/O runs on aiosqlite's thread or asyncpg's socket).
A full queue drops what comes next and counts it (logged once per drain), so a slow or broken database
never blocks, and never grows memory without bound. ``flush`` drains now (the API's queries call it, so
a query sees the spans of the requests before it; shutdown calls it last).

It also prunes the store: expired rows go at start-up and every ``prune_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

from lamina.storage.kvstore import StorageError
from lamina_telemetry.store import MetricPoint, TraceStore, dumps_json

log = structlog.get_logger(__name__)

#: Llama Stack's token metrics (labels model_id, provider_id), answered from the core's token histogram
TOKEN_METRIC = "gen_ai.client.token.usage"
LLAMA_STACK_TOKEN_METRICS = {"input": "prompt_tokens", "output": "completion_tokens"}


class StoreWriter:
    def __init__(
        self,
        store: TraceStore,
        *,
        ttl_seconds: int,
        max_queue: int = 20_000,
        batch: int = 2_000,
        interval: float = 1.0,
        prune_interval: float = 600.0,
    ) -> None:
        self.store = store
        self.ttl_ns = ttl_seconds * 1_000_000_000
        self.max_queue = max_queue
        self.batch = batch
        self.interval = interval
        self.prune_interval = prune_interval
        self.spans: deque[tuple[Any, ...]] = deque()  # rows of finished spans (SPAN_COLUMNS order)
        self.points: deque[MetricPoint] = deque()
        self.events: deque[tuple[Any, ...]] = deque()  # span events (rows of the events table)
        self.dropped_spans = 0
        self.dropped_points = 0
        self._logged_drops = 0
        self.last_error: str | None = None  # the last failed drain's error, until a drain succeeds
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- called from any thread -------------------------------------------------------------------

    def put_span(self, span: ReadableSpan) -> None:
        if len(self.spans) >= self.max_queue:
            self.dropped_spans += 1
            return
        row = span_row(span, self.ttl_ns)
        self.spans.append(row)
        if span.events:  # an exception a span recorded, or any other span event: kept in the events table
            self.events.extend(event_rows([(e.name, e.timestamp, e.attributes) for e in span.events], row))

    def put_points(self, points: Sequence[MetricPoint]) -> None:
        room = self.max_queue - len(self.points)
        if room < len(points):
            self.dropped_points += len(points) - max(room, 0)
            points = points[: max(room, 0)]
        self.points.extend(points)

    # -- on the event loop ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._prune()
        self._task = asyncio.create_task(self._run(), name="trace-store-writer")

    async def _run(self) -> None:
        next_prune = time.monotonic() + self.prune_interval
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
                self.last_error = None
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.prune_interval
                    await self._prune()
            except StorageError as exc:
                # The rows taken are lost (they are not re-queued: a database that stays down must not
                # hold memory); the next drain tries again with what came since.
                self.last_error = str(exc)
                log.warning("trace_store_write_failed", error=str(exc))

    async def _prune(self) -> None:
        try:
            removed = await self.store.prune()
        except StorageError as exc:
            log.warning("trace_store_prune_failed", error=str(exc))
            return
        if removed:
            log.info("trace_store_pruned", rows=removed)

    async def flush(self) -> None:
        """Write everything queued so far."""
        async with self._lock:
            while self.spans:
                await self.store.add_spans(
                    [self.spans.popleft() for _ in range(min(self.batch, len(self.spans)))]
                )
            while self.events:
                await self.store.add_events(
                    [self.events.popleft() for _ in range(min(self.batch, len(self.events)))]
                )
            while self.points:
                await self.store.add_points(
                    [self.points.popleft() for _ in range(min(self.batch, len(self.points)))]
                )
        dropped = self.dropped_spans + self.dropped_points
        if dropped > self._logged_drops:
            log.warning(
                "trace_store_queue_full",
                dropped_spans=self.dropped_spans,
                dropped_points=self.dropped_points,
                max_queue=self.max_queue,
            )
            self._logged_drops = dropped

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


def span_row(span: ReadableSpan, ttl_ns: int) -> tuple[Any, ...]:
    """The span's row in SPAN_COLUMNS order (a tuple, not a SpanRow: this runs for every span)."""
    ctx = span.context
    parent = span.parent
    # .copy() of the attributes' read-only view is a plain dict at once; iterating the view locks
    # per item (4 µs a span).
    return make_row(
        ctx.trace_id,
        ctx.span_id,
        (parent.span_id, parent.is_remote) if parent is not None else None,
        span.name,
        span.start_time,
        span.end_time,
        span.status.status_code == StatusCode.ERROR,
        span.attributes.copy() if span.attributes else {},
        str(span.resource.attributes.get("service.name", "")),
        ttl_ns,
    )


def make_row(
    trace_id: int,
    span_id: int,
    parent: tuple[int, bool] | None,
    name: str,
    start: int | None,
    end: int | None,
    error: bool,
    attributes: dict[str, Any],
    service: str,
    ttl_ns: int,
) -> tuple[Any, ...]:
    """A span's row from its parts (``parent``: its id and whether it is remote); the export worker makes
    rows from its records with this, the in-process processor from SDK spans (``span_row``)."""
    end = end or time.time_ns()
    return (
        format(trace_id, "032x"),
        format(span_id, "016x"),
        format(parent[0], "016x") if parent is not None else None,
        # A parent in another process (a caller's traceparent) is not in this store: the span
        # is where this server's part of the trace starts.
        1 if parent is None or parent[1] else 0,
        name,
        start or end,
        end,
        "error" if error else "ok",
        dumps_json(attributes),  # tuples (sequence attributes) are written as JSON arrays
        service,
        end + ttl_ns,
    )


def stored(span: ReadableSpan) -> bool:
    """Whether the trace store keeps ``span`` (``stored_attributes``)."""
    return stored_attributes(span.attributes)


def stored_attributes(attributes: Mapping[str, Any] | None) -> bool:
    """Whether the trace store keeps a span with these attributes: not the spans of the telemetry API's
    own requests (a dashboard polling ``query_traces`` would otherwise fill the store with traces of its
    polling, the newest first; the OTLP and console sinks still get them)."""
    return not (
        attributes
        and (
            attributes.get("lamina.api") == "telemetry"
            or str(attributes.get("url.path", "")).startswith("/v1/telemetry/")
        )
    )


def event_rows(
    events: Iterable[tuple[str, int, Mapping[str, Any] | None]], row: tuple[Any, ...]
) -> list[tuple[Any, ...]]:
    """A span's events ((name, timestamp, attributes) each) as events-table rows for the span of ``row``:
    an ``exception`` event is an error whose message is the exception's; any other is ``info`` with the
    event's name as its message."""
    trace_id, span_id, expires = row[0], row[1], row[-1]
    out = []
    for name, timestamp, event_attributes in events:
        attributes = dict(event_attributes or {})
        attributes["event.name"] = name
        if name == "exception":
            severity = "error"
            message = str(
                attributes.get("exception.message") or attributes.get("exception.type") or "exception"
            )
        else:
            severity, message = "info", name
        out.append((trace_id, span_id, timestamp, severity, message, dumps_json(attributes), expires))
    return out


class StoreSpanProcessor(SpanProcessor):
    """Queues every finished, sampled span for the trace store (see the module's docstring), but the
    spans of the telemetry API's own requests: a dashboard polling ``query_traces`` would otherwise fill
    the store with traces of its polling, the newest first (the OTLP and console sinks still get them).
    """

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if stored(span):
            self.writer.put_span(span)

    def shutdown(self) -> None:
        pass  # the provider's shutdown flushes the writer (on the event loop) after the tracer stops

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class StoreMetricExporter(MetricExporter):
    """Writes the meter provider's points to the trace store as deltas (what query_metrics adds up).

    A histogram becomes two series: its name (the sum of the values) and ``<name>.count``. The core's
    token histogram is also written under Llama Stack's names, ``prompt_tokens``, ``completion_tokens``
    and ``total_tokens``, labelled ``model_id`` and ``provider_id``.
    """

    def __init__(self, writer: StoreWriter) -> None:
        super().__init__(
            preferred_temporality=dict.fromkeys(_instrument_classes(), AggregationTemporality.DELTA)
        )
        self.writer = writer

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        expires = time.time_ns() + self.writer.ttl_ns
        points: list[MetricPoint] = []
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points.extend(_points(metric, expires))
        self.writer.put_points(points)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _instrument_classes() -> list[type]:
    from opentelemetry.sdk.metrics import (
        Counter,
        ObservableCounter,
        ObservableGauge,
        ObservableUpDownCounter,
        UpDownCounter,
    )
    from opentelemetry.sdk.metrics import (
        Histogram as HistogramInstrument,
    )

    return [
        Counter,
        UpDownCounter,
        HistogramInstrument,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    ]


def _points(metric: Any, expires: int) -> list[MetricPoint]:
    data = metric.data
    unit = metric.unit or ""
    out: list[MetricPoint] = []
    for dp in data.data_points:
        labels = {str(k): str(v) for k, v in (dp.attributes or {}).items()}
        ts = dp.time_unix_nano
        if isinstance(data, Gauge):
            out.append(MetricPoint(metric.name, labels, ts, dp.value, "gauge", unit, expires))
        elif isinstance(data, Sum):
            if dp.value:  # a zero delta adds nothing
                out.append(MetricPoint(metric.name, labels, ts, dp.value, "sum", unit, expires))
        elif isinstance(data, Histogram) or hasattr(dp, "sum"):
            if not dp.count:
                continue
            out.append(MetricPoint(metric.name, labels, ts, dp.sum, "sum", unit, expires))
            out.append(MetricPoint(f"{metric.name}.count", labels, ts, dp.count, "sum", "", expires))
            if metric.name == TOKEN_METRIC:
                out.extend(_llama_stack_tokens(dp.attributes or {}, ts, dp.sum, expires))
    return out


def _llama_stack_tokens(attributes: Any, ts: int, value: float, expires: int) -> list[MetricPoint]:
    name = LLAMA_STACK_TOKEN_METRICS.get(str(attributes.get("gen_ai.token.type", "")))
    if name is None:
        return []
    model = attributes.get("gen_ai.request.model") or attributes.get("gen_ai.response.model") or ""
    labels = {"model_id": str(model), "provider_id": str(attributes.get("lamina.provider.id", ""))}
    return [
        MetricPoint(name, labels, ts, value, "sum", "tokens", expires),
        MetricPoint("total_tokens", labels, ts, value, "sum", "tokens", expires),
    ]
