"""The export worker's own OTLP encoding (otlp_records) against the stock encoder, and its store rows
against the in-process processor's: the same spans must reach a collector and the trace store whichever
path made them."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from lamina.testing.otlp_receiver import OtlpReceiver
from lamina_telemetry import otlp_records
from lamina_telemetry.export_worker import _Rebuilder, flat_records, record, record_rows
from lamina_telemetry.otlp_records import RecordEncoder, RecordExporter
from lamina_telemetry.store_writer import event_rows, span_row, stored

RESOURCE = {"service.name": "records-test", "deployment.environment": "ci"}


class _Keep(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _records() -> list[tuple[Any, ...]]:
    """Spans of every shape a record carries, made by the SDK and turned into records."""
    kept = _Keep()
    provider = TracerProvider(resource=Resource(RESOURCE))
    provider.add_span_processor(kept)
    tracer = provider.get_tracer("lamina", "1.0", schema_url="https://opentelemetry.io/schemas/1.26.0")
    other = provider.get_tracer("other-scope")
    state = TraceState([("v", "1")])
    caller = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    server = tracer.start_span(
        "POST /v1/chat",
        context=trace.set_span_in_context(NonRecordingSpan(caller)),
        kind=SpanKind.SERVER,
        attributes={"http.route": "/v1/chat", "http.response.status_code": 200, "flag": True},
    )
    inner = trace.set_span_in_context(server)
    # True == 1: the two "flag" values must not share a cached encoding
    linked = other.start_span("linked", attributes={"flag": 1, "ratio": 0.5, "pair": (1, 0)})
    linked.end()
    chat = tracer.start_span(
        "chat m",
        context=inner,
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.request.model": "m",
            "gen_ai.response.finish_reasons": ("stop",),
            "pair": (True, False),
            "long": "x" * 1000,
        },
        links=[Link(linked.get_span_context(), {"why": "batch"})],
    )
    chat.add_event("first_token", {"n": 1})
    chat.record_exception(ValueError("bad input"))
    chat.set_status(Status(StatusCode.ERROR, "bad input"))
    chat.end()
    tracer.start_span("empty", context=inner).end()
    tracer.start_span("GET /v1/telemetry/traces", attributes={"url.path": "/v1/telemetry/traces"}).end()
    server.end()
    provider.shutdown()
    made = [flat for span in kept.spans for flat in flat_records(record(span))]  # as the worker gets them
    unscoped = (*made[0][:14], None)  # a record without an instrumentation scope
    return [*made, unscoped]


def _stock(records: list[tuple[Any, ...]]) -> ExportTraceServiceRequest:
    rebuild = _Rebuilder(Resource(RESOURCE))
    return encode_spans([rebuild(r) for r in records])


def test_the_encoding_is_the_stock_encoders() -> None:
    records = _records()
    encoder = RecordEncoder(RESOURCE)
    first = ExportTraceServiceRequest.FromString(encoder.encode(records))
    assert first == _stock(records)
    # Again, now from the cache of encoded attributes: still the same request.
    assert encoder._attributes
    assert ExportTraceServiceRequest.FromString(encoder.encode(records)) == first
    spans = {s.name: s for rs in first.resource_spans for ss in rs.scope_spans for s in ss.spans}

    def kinds(name: str) -> dict[str, str | None]:
        return {kv.key: kv.value.WhichOneof("value") for kv in spans[name].attributes}

    assert kinds("linked")["flag"] == "int_value" and kinds("POST /v1/chat")["flag"] == "bool_value"
    pair = next(kv.value for kv in spans["chat m"].attributes if kv.key == "pair")
    assert [v.WhichOneof("value") for v in pair.array_value.values] == ["bool_value", "bool_value"]


def test_the_attribute_cache_is_bounded_and_skips_long_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_records, "CACHE_ENTRIES", 4)
    records = _records()
    encoder = RecordEncoder(RESOURCE)
    for _ in range(3):
        assert ExportTraceServiceRequest.FromString(encoder.encode(records)) == _stock(records)
        assert len(encoder._attributes) <= 4
    assert not any(key[0] == "long" for key in encoder._attributes)


def test_a_mapping_value_is_encoded_uncached() -> None:
    records = [(*_records()[0][:11], {"config": {"a": 1, "b": ["x"]}}, None, None, ("lamina", None, None))]
    encoder = RecordEncoder(RESOURCE)
    assert ExportTraceServiceRequest.FromString(encoder.encode(records)) == _stock(records)
    assert not encoder._attributes


def test_records_reach_a_collector_the_same_by_either_path(otlp_receiver: OtlpReceiver) -> None:
    records = _records()
    rebuild = _Rebuilder(Resource(RESOURCE))
    exporter = RecordExporter(otlp_receiver.traces_endpoint, 5, RESOURCE, rebuild)
    # The pinned exporter has the HTTP client the fast path posts through; without it, the stock path.
    assert exporter.post is not None
    assert exporter.export(records).name == "SUCCESS"
    direct = otlp_receiver.wait_for(lambda: len(otlp_receiver.spans()) >= len(records) or None)
    direct = sorted((s for s in otlp_receiver.spans()), key=lambda s: (s.name, s.span_id))
    otlp_receiver.clear()
    exporter.post = None
    assert exporter.export(records).name == "SUCCESS"
    otlp_receiver.wait_for(lambda: len(otlp_receiver.spans()) >= len(records) or None)
    stock = sorted((s for s in otlp_receiver.spans()), key=lambda s: (s.name, s.span_id))
    assert direct == stock and len(direct) == len(records)
    chat = next(s for s in direct if s.name == "chat m")
    assert chat.status == "ERROR" and [name for name, _ in chat.events] == ["first_token", "exception"]
    exporter.shutdown()


def test_a_collector_answering_errors_is_a_failed_export(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.behave(status=400)  # not retried: one answer decides
    exporter = RecordExporter(otlp_receiver.traces_endpoint, 2, RESOURCE, _Rebuilder(Resource(RESOURCE)))
    assert exporter.export(_records()).name == "FAILURE"
    exporter.shutdown()


def test_the_worker_writes_the_rows_the_in_process_processor_writes() -> None:
    records = _records()
    rebuild = _Rebuilder(Resource(RESOURCE))
    spans = [rebuild(r) for r in records]
    rows, events = record_rows(records, "records-test", 60_000_000_000)
    expected = [span_row(span, 60_000_000_000) for span in spans if stored(span)]
    assert rows == expected
    assert len(rows) == len(records) - 1  # the telemetry API's own span is not kept
    expected_events = [
        row
        for span, made in zip(spans, [span_row(s, 60_000_000_000) for s in spans], strict=True)
        if stored(span) and span.events
        for row in event_rows([(e.name, e.timestamp, e.attributes) for e in span.events], made)
    ]
    assert events == expected_events
    assert [(e[3], e[4]) for e in events] == [("info", "first_token"), ("error", "bad input")]


def test_flat_records_build_a_lean_spans_deferred_attributes_and_riders() -> None:
    from lamina.telemetry.derived import derive
    from lamina_telemetry.lean_tracer import LeanTracerProvider

    class Pipe:
        builds_derived = True

        def __init__(self) -> None:
            self.made: list[tuple[Any, ...]] = []

        def on_end(self, span: Any) -> None:
            self.made.append(span.export_record())

    pipe = Pipe()
    provider = LeanTracerProvider("records-test")
    provider.add_span_processor(pipe)
    tracer = provider.get_tracer("lamina")
    server = tracer.start_span("POST /v1/x", kind=SpanKind.SERVER)
    child = tracer.start_span("child", context=trace.set_span_in_context(server), attributes={"a": 1})
    child.end()
    derive(server, "http.server", "POST", "/v1/x", "/v1/x", 200, "req-1", None)
    server.end()
    assert len(pipe.made) == 1  # the child rode in its request span's record
    flat = flat_records(pipe.made[0])
    assert [r[0] for r in flat] == ["POST /v1/x", "child"]
    assert all(len(r) == 15 for r in flat)
    assert flat[0][11]["http.response.status_code"] == 200 and flat[1][11] == {"a": 1}
