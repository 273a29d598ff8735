"""Telemetry: Llama Stack 0.2.12's telemetry API (events, traces, spans, metrics) and its provider contract.

The server records its own traces and metrics through OpenTelemetry (``lamina.telemetry``); a telemetry
provider keeps them in a trace store and answers these routes from it:

- ``POST /v1/telemetry/events`` logs an event: an unstructured log attached to its span, a metric point,
  or a structured log that opens (``span_start``) or closes (``span_end``) a span the client traces itself.
- ``POST /v1/telemetry/traces`` and ``POST /v1/telemetry/spans`` query traces and spans by attribute
  (``eq``, ``ne``, ``gt``, ``lt``); ``GET`` a trace or a span by id; ``POST .../tree`` a span's subtree.
- ``POST /v1/telemetry/spans/export`` appends matching spans to a registered dataset (DatasetIO).
- ``POST /v1/telemetry/metrics/{metric_name}`` answers a metric's series over a time range.

Wire shapes are Llama Stack's: the list answers are ``{"data": [...]}`` (llama-stack-client unwraps
``data``), times are ISO 8601, and ``query_metrics`` takes epoch seconds.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, Field

from lamina.access.declarations import no_resource, reads_fixed, reads_traces
from lamina.apis.webmethod import webmethod

#: Llama Stack's default time to live of a logged event: 7 days.
DEFAULT_TTL_SECONDS = 7 * 86400

Primitive = str | int | float | bool | None


class SpanStatus(StrEnum):
    OK = "ok"
    ERROR = "error"


class Span(BaseModel):
    span_id: str
    trace_id: str
    parent_span_id: str | None = None
    name: str
    start_time: datetime
    end_time: datetime | None = None
    attributes: dict[str, Any] | None = Field(default_factory=dict)


class SpanWithStatus(Span):
    status: SpanStatus | None = None


class Trace(BaseModel):
    trace_id: str
    root_span_id: str
    start_time: datetime
    end_time: datetime | None = None


# -- events ------------------------------------------------------------------------------------------


class LogSeverity(StrEnum):
    VERBOSE = "verbose"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    CRITICAL = "critical"


class EventCommon(BaseModel):
    trace_id: str = Field(min_length=1)
    span_id: str = Field(min_length=1)
    timestamp: datetime
    attributes: dict[str, Primitive] | None = Field(default_factory=dict)


class UnstructuredLogEvent(EventCommon):
    type: Literal["unstructured_log"] = "unstructured_log"
    message: str
    severity: LogSeverity


class MetricEvent(EventCommon):
    type: Literal["metric"] = "metric"
    metric: str = Field(min_length=1)
    value: int | float
    unit: str


class SpanStartPayload(BaseModel):
    type: Literal["span_start"] = "span_start"
    name: str = Field(min_length=1)
    parent_span_id: str | None = None


class SpanEndPayload(BaseModel):
    type: Literal["span_end"] = "span_end"
    status: SpanStatus


StructuredLogPayload = Annotated[SpanStartPayload | SpanEndPayload, Field(discriminator="type")]


class StructuredLogEvent(EventCommon):
    type: Literal["structured_log"] = "structured_log"
    payload: StructuredLogPayload


Event = Annotated[UnstructuredLogEvent | MetricEvent | StructuredLogEvent, Field(discriminator="type")]


class LogEventRequest(BaseModel):
    event: Event = Field(
        description="unstructured_log (kept with its span), metric (a metric point: query_metrics answers "
        "it), or structured_log (span_start opens a span, span_end closes it)."
    )
    ttl_seconds: int = Field(
        default=DEFAULT_TTL_SECONDS, ge=1, description="How long the event is kept (default 7 days)."
    )


# -- traces and spans --------------------------------------------------------------------------------


class QueryConditionOp(StrEnum):
    EQ = "eq"
    NE = "ne"
    GT = "gt"
    LT = "lt"


class QueryCondition(BaseModel):
    key: str = Field(min_length=1, description="An attribute name, e.g. gen_ai.request.model.")
    op: QueryConditionOp
    value: Any


class QueryTracesRequest(BaseModel):
    attribute_filters: list[QueryCondition] | None = Field(
        default=None, description="Traces with a span whose attributes satisfy every condition."
    )
    limit: int | None = Field(default=100, ge=1, le=10_000)
    offset: int | None = Field(default=0, ge=0)
    order_by: list[str] | None = Field(
        default=None,
        description="Trace fields (start_time, end_time, trace_id, root_span_id); a leading '-' sorts "
        "descending. Default: -start_time (newest first).",
    )


class QueryTracesResponse(BaseModel):
    data: list[Trace]


class GetTraceRequest(BaseModel):
    trace_id: str = Field(min_length=1)


class GetSpanRequest(BaseModel):
    trace_id: str = Field(min_length=1)
    span_id: str = Field(min_length=1)


class GetSpanTreeRequest(BaseModel):
    span_id: str = Field(min_length=1)
    attributes_to_return: list[str] | None = Field(
        default=None, description="Only these attributes on each span (omitted or empty: all of them)."
    )
    max_depth: int | None = Field(
        default=None,
        ge=1,
        description="Levels of the tree: 1 is the span alone (omitted: the whole subtree).",
    )


class QuerySpanTreeResponse(BaseModel):
    data: dict[str, SpanWithStatus]


class QuerySpansRequest(BaseModel):
    attribute_filters: list[QueryCondition] = Field(
        description="Traces with a span whose attributes satisfy every condition."
    )
    attributes_to_return: list[str] = Field(
        description="The spans of those traces carrying all these attributes, with only these attributes."
    )
    max_depth: int | None = Field(
        default=None, ge=1, description="Only spans within this many levels of their trace's root span."
    )


class QuerySpansResponse(BaseModel):
    data: list[Span]


class SaveSpansToDatasetRequest(BaseModel):
    attribute_filters: list[QueryCondition]
    attributes_to_save: list[str]
    dataset_id: str = Field(min_length=1, description="A registered dataset (DatasetIO) to append rows to.")
    max_depth: int | None = Field(default=None, ge=1)


# -- metrics -----------------------------------------------------------------------------------------


class MetricQueryType(StrEnum):
    RANGE = "range"
    INSTANT = "instant"


class MetricLabelOperator(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    REGEX_MATCH = "=~"
    REGEX_NOT_MATCH = "!~"


class MetricLabelMatcher(BaseModel):
    name: str = Field(min_length=1)
    value: str
    operator: MetricLabelOperator = MetricLabelOperator.EQUALS


class MetricLabel(BaseModel):
    name: str
    value: str


class MetricDataPoint(BaseModel):
    timestamp: int
    value: float


class MetricSeries(BaseModel):
    metric: str
    labels: list[MetricLabel]
    values: list[MetricDataPoint]


class QueryMetricsRequest(BaseModel):
    metric_name: str = Field(min_length=1)
    start_time: int = Field(ge=0, description="Epoch seconds.")
    end_time: int | None = Field(default=None, ge=0, description="Epoch seconds; omitted: now.")
    granularity: str | None = Field(
        default="1d",
        description="Bucket width of a range query: a number and s, m, h, d or w (30s, 1m, 1h, 1d); "
        "null: one bucket per recorded point.",
    )
    query_type: MetricQueryType = Field(
        default=MetricQueryType.RANGE,
        description="range: one point per bucket; instant: one point, the whole range's total.",
    )
    label_matchers: list[MetricLabelMatcher] | None = None


class QueryMetricsResponse(BaseModel):
    data: list[MetricSeries]


# -- the API -----------------------------------------------------------------------------------------


class Telemetry(Protocol):
    @webmethod(
        "POST",
        "/v1/telemetry/events",
        request=LogEventRequest,
        response=None,
        access=no_resource("adds an event to the caller's own trace"),
    )
    async def log_event(self, request: LogEventRequest) -> None:
        """Log an event: an unstructured log, a metric point, or a span's start or end."""
        ...

    @webmethod(
        "POST",
        "/v1/telemetry/traces",
        request=QueryTracesRequest,
        response=QueryTracesResponse,
        cancel_on_disconnect=True,
        access=reads_traces(),
    )
    async def query_traces(self, request: QueryTracesRequest) -> QueryTracesResponse:
        """Query traces by their spans' attributes."""
        ...

    @webmethod(
        "GET",
        "/v1/telemetry/traces/{trace_id}",
        request=GetTraceRequest,
        response=Trace,
        access=reads_traces(),
    )
    async def get_trace(self, request: GetTraceRequest) -> Trace:
        """Get a trace by its id."""
        ...

    @webmethod(
        "GET",
        "/v1/telemetry/traces/{trace_id}/spans/{span_id}",
        request=GetSpanRequest,
        response=Span,
        access=reads_traces(),
    )
    async def get_span(self, request: GetSpanRequest) -> Span:
        """Get a span by its trace's id and its own."""
        ...

    @webmethod(
        "POST",
        "/v1/telemetry/spans/{span_id}/tree",
        request=GetSpanTreeRequest,
        response=QuerySpanTreeResponse,
        cancel_on_disconnect=True,
        access=reads_traces(),
    )
    async def get_span_tree(self, request: GetSpanTreeRequest) -> QuerySpanTreeResponse:
        """Get a span and its descendants, keyed by span id."""
        ...

    @webmethod(
        "POST",
        "/v1/telemetry/spans",
        request=QuerySpansRequest,
        response=QuerySpansResponse,
        cancel_on_disconnect=True,
        access=reads_traces(),
    )
    async def query_spans(self, request: QuerySpansRequest) -> QuerySpansResponse:
        """Query spans: those of the matching traces that carry the attributes asked for."""
        ...

    @webmethod(
        "POST",
        "/v1/telemetry/spans/export",
        request=SaveSpansToDatasetRequest,
        response=None,
        access=reads_traces(uses=(("dataset", "dataset_id"),)),
    )
    async def save_spans_to_dataset(self, request: SaveSpansToDatasetRequest) -> None:
        """Append the spans query_spans would answer to a dataset, one row per span."""
        ...

    @webmethod(
        "POST",
        "/v1/telemetry/metrics/{metric_name}",
        request=QueryMetricsRequest,
        response=QueryMetricsResponse,
        cancel_on_disconnect=True,
        access=reads_fixed("telemetry", "metrics"),
    )
    async def query_metrics(self, request: QueryMetricsRequest) -> QueryMetricsResponse:
        """Query a metric's series between start_time and end_time (epoch seconds)."""
        ...


# -- what a provider implements ----------------------------------------------------------------------


class TelemetryProvider(Protocol):
    """What a ``telemetry`` provider implements (with ``ProviderBase``'s lifecycle): the ``Telemetry``
    methods, each taking the validated request model.

    The contract beyond the route shapes:

    - The provider turns telemetry on: its ``initialize`` builds OpenTelemetry SDK tracer and meter
      providers and calls ``lamina.telemetry.activate``; its ``shutdown`` calls ``deactivate`` and
      flushes what its sinks hold. Spans reach its store off the request path (batched, bounded: a
      full queue drops spans and counts them, it never blocks a request).
    - An unknown trace or span id raises ``NotFoundError`` naming it; a filter, ``order_by`` or
      ``granularity`` it cannot apply raises ``BadRequestError`` naming the field and the fix.
    - ``save_spans_to_dataset`` writes through the DatasetIO API: with no datasetio provider, or an
      unknown ``dataset_id``, a ``BadRequestError`` saying so.
    """

    async def log_event(self, request: LogEventRequest) -> None: ...

    async def query_traces(self, request: QueryTracesRequest) -> QueryTracesResponse: ...

    async def get_trace(self, request: GetTraceRequest) -> Trace: ...

    async def get_span(self, request: GetSpanRequest) -> Span: ...

    async def get_span_tree(self, request: GetSpanTreeRequest) -> QuerySpanTreeResponse: ...

    async def query_spans(self, request: QuerySpansRequest) -> QuerySpansResponse: ...

    async def save_spans_to_dataset(self, request: SaveSpansToDatasetRequest) -> None: ...

    async def query_metrics(self, request: QueryMetricsRequest) -> QueryMetricsResponse: ...
