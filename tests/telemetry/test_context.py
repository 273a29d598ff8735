"""lamina.telemetry.context reads and writes OpenTelemetry's own context: what it sets, the API sees, and
the other way round (it reaches two names OpenTelemetry does not export: an upgrade that moves them
fails here)."""

from __future__ import annotations

import asyncio

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from lamina.telemetry import context


def test_the_fast_path_is_in_use_with_the_default_runtime_context() -> None:
    assert context.FAST


def test_a_span_made_current_here_is_the_apis_current_span_and_back() -> None:
    tracer = TracerProvider().get_tracer("t")
    outer, inner = tracer.start_span("outer"), tracer.start_span("inner")
    assert context.current_span() is trace.get_current_span() is trace.INVALID_SPAN
    token = context.attach_span(outer)
    try:
        assert trace.get_current_span() is outer and context.current_span() is outer
        api_token = otel_context.attach(trace.set_span_in_context(inner))
        assert context.current_span() is inner
        otel_context.detach(api_token)
        assert context.current_span() is outer
        ctx = trace.set_span_in_context(inner)
        assert context.current_span(ctx) is inner and context.current_span() is outer
    finally:
        context.detach(token)
    assert context.current_span() is trace.INVALID_SPAN


def test_other_context_values_are_kept_when_a_span_is_attached() -> None:
    key = otel_context.create_key("baggage-ish")
    token = otel_context.attach(otel_context.set_value(key, "kept"))
    try:
        span_token = context.attach_span(TracerProvider().get_tracer("t").start_span("s"))
        assert otel_context.get_value(key) == "kept"
        context.detach(span_token)
    finally:
        otel_context.detach(token)


async def test_detaching_a_token_from_another_task_is_harmless() -> None:
    token = context.attach_span(TracerProvider().get_tracer("t").start_span("s"))

    async def elsewhere() -> None:
        context.detach(token)  # a token of another context: nothing to restore, no error

    await asyncio.create_task(elsewhere())
    context.detach(token)
    assert context.current_span() is trace.INVALID_SPAN
