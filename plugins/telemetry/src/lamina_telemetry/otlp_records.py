"""OTLP/HTTP span export straight from the export worker's records, without the SDK's span objects.

The export worker (export_worker.py) gets spans as plain records (``export_worker.record``: name, ids,
times, status, attributes, events, links, scope). Rebuilding each as the SDK's ``ReadableSpan`` for the
stock exporter cost the worker ~16 µs a span and the stock encoder (``encode_spans``: a protobuf message
made in Python for every attribute, key and value) ~40 more: measured flat out on two cores, the worker
then took more CPU than the machine had beside the gateway and dropped a third of the spans.

``RecordEncoder`` builds the same ``ExportTraceServiceRequest`` with opentelemetry-proto's message
classes: a span's scalar fields in one constructor, and its attributes merged in as bytes. Each distinct
(key, value) attribute is serialized once, by protobuf, as a Span holding only it, and kept: protobuf
merges concatenated encodings of a message (a repeated field's entries are appended), so a span's
attributes are the join of their cached encodings, parsed in C. Most of a request's attributes (route,
method, model, provider, status) repeat from request to request; values that do not (request ids) are
serialized once each like the rest. The cache is bounded (cleared when full) and skips long strings
(prompt text, when captured, is seldom repeated). ``tests/test_otlp_records.py`` checks the bytes decode
to what the stock encoder makes from the rebuilt spans.

``RecordExporter`` posts the encoded request through the stock ``OTLPSpanExporter``'s HTTP client, so
its endpoint, headers, compression, TLS settings (arguments and ``OTEL_EXPORTER_OTLP_*`` variables),
retries and backoff are the stock exporter's. That client is the exporter's private ``_client``
(opentelemetry-exporter-otlp-proto-http 1.45), and attribute values are encoded by the stock encoder's
``_encode_attributes``: where either is missing, the records are rebuilt as ``ReadableSpan`` and go
through the stock ``export`` instead (slower, same bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, SpanFlags, Status
from opentelemetry.sdk.trace.export import SpanExportResult

try:  # the stock encoder's own attribute encoding (logs and skips a value of a type OTLP has not)
    from opentelemetry.exporter.otlp.proto.common._internal import _encode_attributes
except ImportError:  # pragma: no cover - a release without it: RecordExporter takes the stock path
    _encode_attributes = None

# Span.flags: whether the parent is remote is always known here (the SDK's encoder sets the same bits)
_LOCAL_PARENT = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_REMOTE_PARENT = _LOCAL_PARENT | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
CACHE_ENTRIES = 20_000  # distinct (key, value) encodings kept; cleared when full
CACHE_MAX_TEXT = 256  # longer string values are encoded each time, not kept


class RecordEncoder:
    """Export records (export_worker.record, attributes built) as one OTLP ExportTraceServiceRequest."""

    def __init__(self, resource_attributes: Mapping[str, Any]) -> None:
        self.resource = _encode_attributes(resource_attributes)
        self._attributes: dict[Any, bytes] = {}  # (key, value, its type) -> a Span with only that attribute

    def encode(self, records: Sequence[tuple[Any, ...]]) -> bytes:
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.SetInParent()  # present even when empty, as the stock encoder makes it
        resource_spans.resource.attributes.extend(self.resource)
        by_scope: dict[Any, ScopeSpans] = {}
        for r in records:
            scope = r[14]
            scope_spans = by_scope.get(scope)
            if scope_spans is None:
                scope_spans = by_scope[scope] = resource_spans.scope_spans.add()
                scope_spans.scope.SetInParent()
                if scope is not None:
                    name, version, schema_url = scope
                    scope_spans.scope.name = name
                    if version:
                        scope_spans.scope.version = version
                    if schema_url:
                        scope_spans.schema_url = schema_url
            self._span(scope_spans, r)
        return request.SerializePartialToString()

    def _span(self, scope_spans: ScopeSpans, r: tuple[Any, ...]) -> None:
        (name, trace_id, span_id, _flags, state, parent, kind, start, end, code, description) = r[:11]
        attributes, events, links = r[11], r[12], r[13]
        span = scope_spans.spans.add(
            trace_id=trace_id.to_bytes(16, "big"),
            span_id=span_id.to_bytes(8, "big"),
            trace_state=state or None,
            parent_span_id=parent[0].to_bytes(8, "big") if parent else None,
            flags=_REMOTE_PARENT if parent and parent[1] else _LOCAL_PARENT,
            name=name,
            kind=kind + 1,  # the API's SpanKind values are OTLP's less one (OTLP's 0 is "unspecified")
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            status=Status(code=code, message=description),
        )
        if attributes:
            encoded = self._attributes
            parts = []
            for item in attributes.items():
                try:
                    value = item[1]
                    kind_of = type(value)
                    key = (*item, tuple(map(type, value)) if kind_of is tuple else kind_of)  # True == 1
                    part = encoded.get(key)
                except TypeError:  # an unhashable value (a mapping): not kept
                    key, part = None, None
                if part is None:
                    part = self._attribute(key, *item)
                parts.append(part)
            span.MergeFromString(b"".join(parts))
        for event_name, timestamp, event_attributes in events or ():
            span.events.add(
                name=event_name, time_unix_nano=timestamp, attributes=_encode_attributes(event_attributes)
            )
        for link_trace, link_span, _link_flags, link_attributes in links or ():
            # A link's context is rebuilt as remote (export_worker._Rebuilder): the same flags as there.
            span.links.add(
                trace_id=link_trace.to_bytes(16, "big"),
                span_id=link_span.to_bytes(8, "big"),
                attributes=_encode_attributes(link_attributes),
                flags=_REMOTE_PARENT,
            )

    def _attribute(self, key: Any, name: str, value: Any) -> bytes:
        """A Span holding only this attribute, serialized (and kept, for ``key``: see the module)."""
        part = Span(attributes=_encode_attributes({name: value})).SerializeToString()
        if key is not None and not (type(value) is str and len(value) > CACHE_MAX_TEXT):
            if len(self._attributes) >= CACHE_ENTRIES:
                self._attributes.clear()
            self._attributes[key] = part
        return part


class RecordExporter:
    """Posts export records to an OTLP/HTTP traces endpoint (see the module's docstring). ``rebuild``
    turns a record into a ReadableSpan, for the stock path."""

    def __init__(
        self,
        endpoint: str,
        timeout: float,
        resource_attributes: Mapping[str, Any],
        rebuild: Callable[[tuple[Any, ...]], Any],
    ) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        self.stock = OTLPSpanExporter(endpoint=endpoint, timeout=timeout)
        self.encoder = RecordEncoder(resource_attributes)
        self.rebuild = rebuild
        client = getattr(self.stock, "_client", None)
        # bytes -> a result with .success; None: the stock path
        self.post = getattr(client, "export", None) if _encode_attributes is not None else None

    def export(self, records: Sequence[tuple[Any, ...]]) -> SpanExportResult:
        if self.post is None:
            return self.stock.export([self.rebuild(r) for r in records])
        result = self.post(self.encoder.encode(records))
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.stock.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
