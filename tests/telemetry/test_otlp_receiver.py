"""The test OTLP receiver decodes what the OpenTelemetry SDK's own OTLP/HTTP exporters send."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from lamina.testing.otlp_receiver import OtlpReceiver


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_receiver_decodes_sdk_spans(otlp_receiver: OtlpReceiver, compression: Compression) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "probe"}))
    exporter = OTLPSpanExporter(endpoint=otlp_receiver.traces_endpoint, compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("probe.scope")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes={"a": 1, "b": ["x", "y"]}):
        with tracer.start_as_current_span("child") as child:
            child.set_status(StatusCode.ERROR, "boom")
            child.add_event("happened", {"k": "v"})
    provider.shutdown()

    spans = {s.name: s for s in otlp_receiver.wait_for_spans(lambda s: True, count=2)}
    parent, kid = spans["parent"], spans["child"]
    assert parent.parent_span_id is None and parent.kind == "SERVER"
    assert parent.attributes == {"a": 1, "b": ["x", "y"]}
    assert kid.parent_span_id == parent.span_id and kid.trace_id == parent.trace_id
    assert (kid.status, kid.status_message) == ("ERROR", "boom")
    assert kid.events == [("happened", {"k": "v"})]
    assert parent.resource["service.name"] == "probe" and parent.scope == "probe.scope"
    assert len(parent.trace_id) == 32 and len(parent.span_id) == 16


def test_receiver_decodes_sdk_metrics(otlp_receiver: OtlpReceiver) -> None:
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=otlp_receiver.metrics_endpoint), export_interval_millis=3_600_000
    )
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("probe")
    meter.create_counter("probe.requests").add(3, {"route": "/x"})
    meter.create_histogram("probe.seconds", unit="s").record(0.25)
    provider.force_flush()
    provider.shutdown()

    counter = otlp_receiver.wait_for(lambda: otlp_receiver.metric_points("probe.requests"), what="metrics")
    # force_flush and shutdown each export the (cumulative) points: one or more copies, all the same.
    assert {(p.kind, p.value, tuple(p.attributes.items())) for p in counter} == {
        ("sum", 3, (("route", "/x"),))
    }
    histogram = otlp_receiver.metric_points("probe.seconds")[0]
    assert (histogram.kind, histogram.count, histogram.sum, histogram.unit) == ("histogram", 1, 0.25, "s")


def test_receiver_injects_collector_failures(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.behave(status=503)
    exporter = OTLPSpanExporter(endpoint=otlp_receiver.traces_endpoint, timeout=2)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("lost"):
        pass
    provider.shutdown()
    assert otlp_receiver.posts["traces"] >= 1
    assert otlp_receiver.spans() == []
