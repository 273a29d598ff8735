"""lamina_telemetry.lean_tracer: the OpenTelemetry trace API without the SDK's span objects.

Real parts: the lean spans go through the plugin's own processors (the trace store's rows, the export
worker's real child process) to a real OTLP receiver on 127.0.0.1; propagation is the API's W3C one.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, Status, StatusCode

from lamina.testing.otlp_receiver import OtlpReceiver
from lamina_telemetry.config import TelemetryConfig
from lamina_telemetry.lean_tracer import LeanSpan, LeanTracerProvider
from lamina_telemetry.store_writer import StoreSpanProcessor, StoreWriter
from lamina_telemetry.tracing_setup import build_tracer_provider


class Ended:
    """Collects ended spans (what a span processor is handed)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def on_end(self, span: Any) -> None:
        self.spans.append(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def _provider(ratio: float = 1.0) -> tuple[LeanTracerProvider, Ended]:
    provider = LeanTracerProvider("lean-test", ratio)
    ended = Ended()
    provider.add_span_processor(ended)
    return provider, ended


def test_the_lean_provider_is_the_default_but_the_console_sink_and_tracer_sdk_keep_the_sdk() -> None:
    assert isinstance(build_tracer_provider(TelemetryConfig(sinks=[])), LeanTracerProvider)
    console = build_tracer_provider(TelemetryConfig(sinks=["console"], tracer="lean"))
    assert not isinstance(console, LeanTracerProvider)
    console.shutdown()
    assert not isinstance(build_tracer_provider(TelemetryConfig(sinks=[], tracer="sdk")), LeanTracerProvider)


def test_children_share_the_trace_and_name_their_parent_and_attributes_are_kept_as_set() -> None:
    provider, ended = _provider()
    tracer = provider.get_tracer("lamina")
    with tracer.start_as_current_span("server", kind=SpanKind.SERVER, attributes={"a": 1, "none": None}):
        child = tracer.start_span("child", attributes={"gen_ai.request.model": "m"})
        child.set_attributes({"gen_ai.usage.output_tokens": 4, "reasons": ["stop"], "skip": None})
        child.set_attribute("obj", object)  # not an OTel type: kept as text, not dropped silently
        child.end()
        child.set_attribute("late", 1)  # after end: ignored, as the SDK does
    assert [s.name for s in ended.spans] == ["child", "server"]
    child_span, server_span = ended.spans
    assert child_span.context.trace_id == server_span.context.trace_id
    assert child_span.parent.span_id == server_span.context.span_id
    assert server_span.parent is None and server_span.kind is SpanKind.SERVER
    assert server_span.attributes == {"a": 1}
    assert child_span.attributes["reasons"] == ("stop",)
    assert child_span.attributes["obj"] == str(object) and "late" not in child_span.attributes
    assert child_span.end_time >= child_span.start_time > 0
    assert not child_span.is_recording()


def test_sampling_ratio_matches_the_sdk_and_a_parents_decision_is_followed() -> None:
    for ratio in (0.0, 0.25, 0.5, 1.0):
        assert LeanTracerProvider("x", ratio)._bound == TraceIdRatioBased(ratio).bound
    provider, ended = _provider(0.0)
    tracer = provider.get_tracer("lamina")
    dropped = tracer.start_span("new trace")
    assert isinstance(dropped, NonRecordingSpan) and not dropped.get_span_context().trace_flags.sampled
    # A caller's sampled traceparent wins over ratio 0; its unsampled one over ratio 1.
    sampled_parent = extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    kept = tracer.start_span("kept", context=sampled_parent)
    kept.end()
    assert isinstance(kept, LeanSpan) and kept.parent.is_remote
    assert format(kept.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    provider1, ended1 = _provider(1.0)
    unsampled_parent = extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"})
    skipped = provider1.get_tracer("lamina").start_span("skipped", context=unsampled_parent)
    skipped.end()
    assert not skipped.is_recording() and ended1.spans == []
    assert [s.name for s in ended.spans] == ["kept"]
    # A half-sampled tracer keeps about half of new traces (the decision is the trace id's, not random).
    half, half_ended = _provider(0.5)
    for _ in range(2000):
        half.get_tracer("lamina").start_span("s").end()
    assert 800 < len(half_ended.spans) < 1200


def test_w3c_traceparent_is_injected_from_the_current_lean_span() -> None:
    provider, _ = _provider()
    with provider.get_tracer("lamina").start_as_current_span("server") as span:
        carrier: dict[str, str] = {}
        inject(carrier)
    ctx = span.get_span_context()
    assert carrier["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"


def test_an_exception_in_start_as_current_span_is_recorded_as_an_error_event() -> None:
    provider, ended = _provider()
    with pytest.raises(ValueError), provider.get_tracer("lamina").start_as_current_span("boom"):
        raise ValueError("bad input")
    (span,) = ended.spans
    assert span.status.status_code is StatusCode.ERROR
    (event,) = span.events
    assert event.name == "exception" and event.attributes["exception.message"] == "bad input"
    assert "ValueError" in event.attributes["exception.stacktrace"]
    assert trace.get_current_span() is trace.INVALID_SPAN  # the context was restored


def test_lean_spans_make_the_trace_stores_rows() -> None:
    provider = LeanTracerProvider("lean-test")
    writer = StoreWriter(None, ttl_seconds=3600)  # type: ignore[arg-type]  # only put_span is used here
    provider.add_span_processor(StoreSpanProcessor(writer))
    tracer = provider.get_tracer("lamina")
    root = tracer.start_span("root", attributes={"lamina.api": "inference"})
    token = otel_context.attach(trace.set_span_in_context(root))
    child = tracer.start_span("child")
    child.record_exception(RuntimeError("upstream 502"))
    child.set_status(Status(StatusCode.ERROR, "upstream 502"))
    child.end()
    otel_context.detach(token)
    root.end()
    rows = {row[4]: row for row in writer.spans}
    assert set(rows) == {"root", "child"}
    assert rows["child"][2] == rows["root"][1] and rows["child"][0] == rows["root"][0]
    assert rows["root"][3] == 1 and rows["child"][3] == 0  # root of this server's part of the trace
    assert rows["child"][7] == "error" and rows["root"][7] == "ok"
    assert '"lamina.api"' in rows["root"][8] and rows["root"][9] == "lean-test"
    (event,) = writer.events
    assert event[3] == "error" and event[4] == "upstream 502"


def test_lean_spans_reach_a_real_collector_through_the_export_worker(otlp_receiver: OtlpReceiver) -> None:
    config = TelemetryConfig(
        sinks=["otel_trace"],
        otel_trace_endpoint=otlp_receiver.traces_endpoint,
        service_name="lean-test",
        tracer="lean",
    )
    provider = build_tracer_provider(config)
    assert isinstance(provider, LeanTracerProvider)
    tracer = provider.get_tracer("lamina")
    root = tracer.start_span("POST /v1/x", kind=SpanKind.SERVER, attributes={"http.route": "/v1/x"})
    linked = tracer.start_span("linked")
    linked.end()
    child = tracer.start_span(
        "chat m",
        context=trace.set_span_in_context(root),
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.usage.input_tokens": 3, "list": ["a", "b"], "f": 0.5, "b": True},
        links=[Link(linked.get_span_context(), {"why": "batch"})],
    )
    child.record_exception(ValueError("bad input"))
    child.set_status(Status(StatusCode.ERROR, "bad input"))
    child.end()
    root.end()
    provider.shutdown()  # the export worker's shutdown flushes: the spans are at the receiver now

    spans = {s.name: s for s in otlp_receiver.spans()}
    assert set(spans) == {"POST /v1/x", "linked", "chat m"}
    server, chat = spans["POST /v1/x"], spans["chat m"]
    assert chat.parent_span_id == server.span_id and chat.trace_id == server.trace_id
    assert server.parent_span_id is None and server.kind == "SERVER" and chat.kind == "CLIENT"
    assert chat.attributes == {"gen_ai.usage.input_tokens": 3, "list": ["a", "b"], "f": 0.5, "b": True}
    assert chat.status == "ERROR" and chat.status_message == "bad input"
    assert [name for name, _ in chat.events] == ["exception"]
    assert chat.events[0][1]["exception.message"] == "bad input"
    assert chat.links == [(spans["linked"].trace_id, spans["linked"].span_id)]
    assert server.resource["service.name"] == "lean-test" and server.scope == "lamina"
    assert chat.end_ns >= chat.start_ns > 0


def test_span_limits_are_the_sdks_defaults() -> None:
    from lamina_telemetry.lean_tracer import MAX_ATTRIBUTES, MAX_EVENTS, MAX_LINKS

    provider, ended = _provider()
    tracer = provider.get_tracer("t")
    other = tracer.start_span("other")
    span = tracer.start_span("big", attributes={f"a{i}": i for i in range(200)})
    span.set_attribute("a0", "changed")  # an attribute already set can still change
    span.set_attribute("late", 1)  # a new one past the limit is dropped
    for i in range(200):
        span.add_event(f"e{i}")
        span.add_link(other.get_span_context())
    span.end()
    (done,) = ended.spans
    assert len(done.attributes) == MAX_ATTRIBUTES == 128 and done.attributes["a0"] == "changed"
    assert "late" not in done.attributes and done.attributes["a127"] == 127
    assert len(done.events) == MAX_EVENTS and done.events[-1].name == "e127"
    assert len(done.links) == MAX_LINKS


def test_a_lean_spans_export_record_is_the_generic_record() -> None:
    """PipeSpanProcessor takes LeanSpan.export_record (read from the slots) instead of
    export_worker.record (the ReadableSpan properties): the worker must get the same tuple."""
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState

    from lamina_telemetry.export_worker import record

    provider, ended = _provider()
    tracer = provider.get_tracer("t", "1.0")
    other = tracer.start_span("other")
    remote = trace.NonRecordingSpan(
        trace.SpanContext(7, 9, True, trace.TraceFlags(1), TraceState([("vendor", "x1")]))
    )
    parent_ctx = trace.set_span_in_context(remote)
    plain = tracer.start_span("plain")
    full = tracer.start_span(
        "full",
        context=parent_ctx,
        kind=SpanKind.CLIENT,
        attributes={"a": 1, "l": ["x", "y"]},
        links=[Link(other.get_span_context(), {"why": "batch"})],
    )
    full.record_exception(ValueError("bad"))
    full.set_status(Status(StatusCode.ERROR, "bad"))
    for span in (plain, full):
        span.end()
    for span in ended.spans:
        # The lean record adds what the generic one lacks: deferred attributes, riders, the request secrets.
        assert span.export_record() == (*record(span), None, None, ())
    assert full.export_record()[4] == "vendor=x1" and full.export_record()[5] == (9, True)
