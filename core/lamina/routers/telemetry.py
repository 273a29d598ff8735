"""The telemetry router: every Telemetry route goes to one telemetry provider.

Traces and spans are the process's own (one tracer provider per process), so, as with Files, the first
provider listed under ``providers.telemetry`` serves every route (a warning names the others, unused).
"""

from __future__ import annotations

from lamina.apis.telemetry import (
    GetSpanRequest,
    GetSpanTreeRequest,
    GetTraceRequest,
    LogEventRequest,
    QueryMetricsRequest,
    QueryMetricsResponse,
    QuerySpansRequest,
    QuerySpansResponse,
    QuerySpanTreeResponse,
    QueryTracesRequest,
    QueryTracesResponse,
    SaveSpansToDatasetRequest,
    Span,
    Trace,
)
from lamina.routers.single_provider import SingleProviderRouter


class TelemetryRouter(SingleProviderRouter):
    api_name = "telemetry"

    async def log_event(self, request: LogEventRequest) -> None:
        await self.provider.log_event(request)

    async def query_traces(self, request: QueryTracesRequest) -> QueryTracesResponse:
        return await self.provider.query_traces(request)

    async def get_trace(self, request: GetTraceRequest) -> Trace:
        return await self.provider.get_trace(request)

    async def get_span(self, request: GetSpanRequest) -> Span:
        return await self.provider.get_span(request)

    async def get_span_tree(self, request: GetSpanTreeRequest) -> QuerySpanTreeResponse:
        return await self.provider.get_span_tree(request)

    async def query_spans(self, request: QuerySpansRequest) -> QuerySpansResponse:
        return await self.provider.query_spans(request)

    async def save_spans_to_dataset(self, request: SaveSpansToDatasetRequest) -> None:
        await self.provider.save_spans_to_dataset(request)

    async def query_metrics(self, request: QueryMetricsRequest) -> QueryMetricsResponse:
        return await self.provider.query_metrics(request)
