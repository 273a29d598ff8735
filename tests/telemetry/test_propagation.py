"""lamina.telemetry.propagation: outgoing traceparent/tracestate are exactly what OpenTelemetry's W3C
propagator writes (inject formats them itself, for speed), and what extract reads back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from lamina.telemetry import propagation
from lamina.telemetry.state import TelemetrySettings, activate, deactivate


@pytest.fixture
def on() -> Iterator[None]:
    activate(TelemetrySettings(tracer_provider=TracerProvider()))
    yield
    deactivate()


@pytest.mark.parametrize(
    ("flags", "state"),
    [(TraceFlags.SAMPLED, None), (TraceFlags.DEFAULT, None), (TraceFlags.SAMPLED, [("vendor", "x=1")])],
)
def test_inject_writes_what_the_w3c_propagator_writes(on: None, flags: int, state: list | None) -> None:
    ctx = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState(state) if state else None,
    )
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(ctx)))
    try:
        ours = propagation.inject({"authorization": "Bearer k"})
        theirs: dict[str, str] = {"authorization": "Bearer k"}
        TraceContextTextMapPropagator().inject(theirs)
    finally:
        otel_context.detach(token)
    assert ours == theirs
    assert ours["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-")
    back = trace.get_current_span(propagation.context_from(ours)).get_span_context()
    assert (back.trace_id, back.span_id, back.trace_flags) == (ctx.trace_id, ctx.span_id, ctx.trace_flags)


def test_inject_without_a_current_span_or_with_telemetry_off_leaves_headers_alone(on: None) -> None:
    headers = {"a": "b"}
    assert propagation.inject(headers) is headers
    deactivate()
    assert propagation.inject(headers) is headers
