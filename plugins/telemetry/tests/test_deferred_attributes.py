"""Attributes built in the export worker (lamina.telemetry.derived) and spans riding in their request's
record (lean_tracer.DeferringLeanSpan): the same spans, attributes and redaction as built at once.

Each equivalence test replays one request's telemetry calls (the core's HTTP span, route attributes and
provider wrapper) twice: through the OpenTelemetry SDK with an in-memory exporter (attributes built on
the request path) and through the lean tracer whose only processor marshals each record as the export
worker's does (attributes deferred); the deferred records are rebuilt by the worker's own code. The real
worker process is in the last tests (a real OTLP receiver on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import gc
import marshal
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lamina import redaction
from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.models import Model
from lamina.telemetry import TelemetrySettings, activate, deactivate, http_spans, propagation, spans
from lamina.telemetry.context import current_span
from lamina.telemetry.derived import derive
from lamina.telemetry.provider_proxy import wrap
from lamina.testing.otlp_receiver import OtlpReceiver
from lamina_telemetry.config import TelemetryConfig
from lamina_telemetry.export_worker import _Rebuilder, marshal_batch
from lamina_telemetry.lean_tracer import (
    MAX_RIDERS,
    RIDE_SECONDS,
    DeferringLeanSpan,
    LeanSpan,
    LeanTracerProvider,
)
from lamina_telemetry.tracing_setup import build_tracer_provider

CHAT_PATH = "/v1/openai/v1/chat/completions"
REQUEST_SECRET = "per-request-token-0123456789"
KNOWN_SECRET = "run-config-key-abcdef123456"
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": f"m-{KNOWN_SECRET}",  # an upstream that echoes a key: masked either way
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
}


class Upstream:
    """An inference provider answering at once (the equivalence is about telemetry, not the upstream)."""

    def __init__(self) -> None:
        self.headers: dict[str, str] | None = None

    async def openai_chat_completion(self, model: Any, request: Any) -> dict[str, Any]:
        self.headers = propagation.inject({})
        return dict(ANSWER)


class Records:
    """The export worker's processor, in-process: records queued and marshalled as one batch, as
    PipeSpanProcessor.on_end and its sending thread do."""

    builds_derived = True

    def __init__(self) -> None:
        self.made: list[tuple[Any, ...]] = []

    def on_end(self, span: Any) -> None:
        self.made.append(span.export_record())

    def spans(self) -> list[Any]:
        rebuild = _Rebuilder(Resource({"service.name": "t"}))
        _, sent = marshal.loads(marshal_batch(self.made))
        return [span for made in sent for span in rebuild.each(made)]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


async def _request(status: int = 200, path: str = "/v1/openai/v1/chat/completions") -> Upstream:
    """One chat completion's telemetry calls, in the order the server makes them."""
    redaction.REQUEST_SECRETS.set((REQUEST_SECRET,))
    headers = CIMultiDict({"Content-Type": "application/json"})
    request = SimpleNamespace(path=path, method="POST", headers=headers)
    route = "/v1/openai/v1/chat/completions"
    traced = http_spans.start(request, route)  # type: ignore[arg-type]
    server = current_span()
    server.set_attributes({"lamina.api": "inference", "lamina.method": "openai_chat_completion"})
    server.set_attribute("lamina.resource.id", "m")
    upstream = Upstream()
    provider = wrap(upstream, "inference", "vllm", "remote::vllm")
    model = Model(identifier="m", provider_resource_id="org/m-1", provider_id="vllm", model_type="llm")
    chat = OpenAIChatCompletionRequest(
        model="m", messages=[{"role": "user", "content": "hi"}], temperature=0.5, max_tokens=9
    )
    await provider.openai_chat_completion(model, chat)
    assert traced is not None
    http_spans.end(traced, status, "req-1", "upstream down" if status >= 500 else None)
    return upstream


def _run_with(tracer_provider: Any) -> Upstream:
    activate(TelemetrySettings(tracer_provider=tracer_provider))
    try:
        return asyncio.run(_request_in_task())
    finally:
        deactivate()


async def _request_in_task() -> Upstream:
    return await asyncio.create_task(_request(**_ARGS))


_ARGS: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _known_secret() -> Any:
    redaction.register_secrets([KNOWN_SECRET])
    yield
    redaction._KNOWN.discard(KNOWN_SECRET)
    redaction._scrub_short.cache_clear()


def _by_name(spans_: list[Any]) -> dict[str, Any]:
    return {s.name: s for s in spans_}


def test_a_requests_record_is_only_tuples_so_the_collector_untracks_it() -> None:
    """Records wait in the sending thread's queue (up to a batch or a second): made of tuples and atoms
    only, the garbage collector untracks them instead of walking them in every collection until they are
    sent (a level of nesting a pass: it finds a tuple's items after the tuple)."""
    _ARGS.update(status=200, path=CHAT_PATH)
    lean = LeanTracerProvider("t")
    records = Records()
    lean.add_span_processor(records)
    _run_with(lean)
    (made,) = records.made

    def containers(value: Any) -> list[Any]:
        if type(value) is tuple:
            return [value, *(c for item in value for c in containers(item))]
        return [] if value is None or type(value) in (str, int, float, bool) else [value]

    found = containers(made)
    assert len(found) > 10 and [c for c in found if type(c) is not tuple] == []
    for _ in range(8):
        gc.collect()
    assert not [c for c in found if gc.is_tracked(c)]


@pytest.mark.parametrize("status", [200, 502])
@pytest.mark.parametrize("path", [CHAT_PATH, f"{CHAT_PATH}/{REQUEST_SECRET}"])
def test_deferred_attributes_are_the_ones_built_at_once(status: int, path: str) -> None:
    _ARGS.update(status=status, path=path)
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    _run_with(sdk)
    eager = _by_name(list(exporter.get_finished_spans()))

    lean = LeanTracerProvider("t")
    records = Records()
    lean.add_span_processor(records)
    upstream = _run_with(lean)
    assert len(records.made) == 1, "the inference span rides in its request's record"
    deferred = _by_name(records.spans())

    assert set(eager) == set(deferred) == {"POST /v1/openai/v1/chat/completions", "chat m"}
    for name in eager:
        assert dict(deferred[name].attributes) == _lean_values(dict(eager[name].attributes)), name
        assert deferred[name].status.status_code == eager[name].status.status_code
    server, chat = deferred["POST /v1/openai/v1/chat/completions"], deferred["chat m"]
    assert chat.parent.span_id == server.context.span_id and chat.context.trace_id == server.context.trace_id
    assert server.kind is SpanKind.SERVER and server.parent is None
    # what the replay's spans say, deferred or not
    assert chat.attributes["gen_ai.request.model"] == "m"
    assert chat.attributes["lamina.provider.model"] == "org/m-1"
    assert chat.attributes["gen_ai.request.temperature"] == 0.5
    assert chat.attributes["gen_ai.request.max_tokens"] == 9
    assert chat.attributes["gen_ai.usage.input_tokens"] == 12
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert chat.attributes["gen_ai.response.model"] == "m-***", "the run config's secret is masked"
    assert server.attributes["http.response.status_code"] == status
    assert server.attributes["lamina.request_id"] == "req-1"
    assert REQUEST_SECRET not in server.attributes["url.path"], "the request's own secret is masked"
    if status >= 500:
        assert server.attributes["error.type"] == "502" and server.status.description == "upstream down"
    assert upstream.headers is not None
    assert upstream.headers["traceparent"].split("-")[2] == f"{chat.context.span_id:016x}"


def _lean_values(attributes: dict[str, Any]) -> dict[str, Any]:
    """The SDK's attribute values as a lean span keeps them (sequences as tuples)."""
    return {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in attributes.items()}


def _lean(processor: Any) -> tuple[LeanTracerProvider, Any]:
    provider = LeanTracerProvider("t")
    provider.add_span_processor(processor)
    return provider, provider.get_tracer("lamina")


class InProcess(Records):
    """An in-process processor (it reads attributes as spans end): nothing is deferred."""

    builds_derived = False


@pytest.mark.parametrize("processor", [Records, InProcess])
def test_a_value_that_is_not_an_attribute_type_is_kept_as_redacted_text(processor: type[Records]) -> None:
    """Deferred, marshal refuses the value: the record is built in the gateway instead (where its batch is
    marshalled); in-process, built at once. Either way the value's text is redacted (it is made before the
    redaction)."""

    class Odd:
        def __str__(self) -> str:
            return f"odd {KNOWN_SECRET}"

    records = processor()
    provider, tracer = _lean(records)
    activate(TelemetrySettings(tracer_provider=provider))
    try:
        span = tracer.start_span("chat m")
        assert isinstance(span, DeferringLeanSpan) is (processor is Records)
        answer = (Odd(), "id-1", 3, 4, ["stop", Odd()], None, None)
        derive(span, "genai.call", None, "chat", ("m", None, False, None, None, None), answer)
        span.end()
    finally:
        deactivate()
    (rebuilt,) = records.spans()
    assert rebuilt.attributes["gen_ai.response.model"] == "odd ***"
    assert rebuilt.attributes["gen_ai.response.finish_reasons"] == ("stop", "odd ***")
    assert rebuilt.attributes["gen_ai.usage.output_tokens"] == 4


def test_spans_ride_in_an_open_recent_request_span_and_go_alone_otherwise() -> None:
    records = Records()
    _, tracer = _lean(records)
    server = tracer.start_span("server", kind=SpanKind.SERVER)
    with spans.current(server):
        child = tracer.start_span("child")
        with spans.current(child):
            grandchild = tracer.start_span("grandchild")
        late = tracer.start_span("late")
        old = tracer.start_span("old")
    assert child.host is server and grandchild.host is server  # type: ignore[attr-defined]
    grandchild.end()
    child.end()
    old.end(server.start_time + RIDE_SECONDS * 1_000_000_000 + 1)  # type: ignore[attr-defined]
    assert len(records.made) == 1, "a span ending after its request span's ride window goes alone"
    server.end()
    late.end()  # after its request span: alone
    assert len(records.made) == 3
    rebuilt = records.spans()
    assert [s.name for s in rebuilt] == ["old", "server", "grandchild", "child", "late"]
    by_name = _by_name(rebuilt)
    assert by_name["grandchild"].parent.span_id == by_name["child"].context.span_id
    assert by_name["child"].parent.span_id == by_name["server"].context.span_id


def test_a_span_ending_on_another_thread_goes_alone() -> None:
    """A rider is added to its host's record only on the host's thread: from another thread the host could
    end (and be exported) between the check and the append, and the rider would be lost."""
    import threading

    records = Records()
    _, tracer = _lean(records)
    server = tracer.start_span("server", kind=SpanKind.SERVER)
    with spans.current(server):
        elsewhere = tracer.start_span("in a thread")
        here = tracer.start_span("on the loop")
    ender = threading.Thread(target=elsewhere.end)
    ender.start()
    ender.join()
    assert len(records.made) == 1, "the span ended on another thread was handed over alone"
    here.end()
    server.end()
    assert len(records.made) == 2
    assert [s.name for s in records.spans()] == ["in a thread", "server", "on the loop"]


def test_a_request_span_takes_a_bounded_number_of_riders() -> None:
    records = Records()
    _, tracer = _lean(records)
    server = tracer.start_span("server", kind=SpanKind.SERVER)
    with spans.current(server):
        for _ in range(MAX_RIDERS + 3):
            tracer.start_span("tool").end()
    assert len(records.made) == 3
    server.end()
    assert len(records.spans()) == MAX_RIDERS + 4


def test_only_request_spans_host_and_only_when_every_processor_is_the_workers() -> None:
    records = Records()
    provider, tracer = _lean(records)
    job = tracer.start_span("job")  # an INTERNAL root (a job's): its children are exported as they end
    with spans.current(job):
        step = tracer.start_span("step")
    assert step.host is None  # type: ignore[attr-defined]
    step.end()
    assert len(records.made) == 1

    provider.add_span_processor(InProcess())  # an in-process processor reads attributes: none deferred
    server = tracer.start_span("server", kind=SpanKind.SERVER)
    assert type(server) is LeanSpan
    derive(server, "http.server", "GET", "/v1/x", "/v1/x", 200, None)
    assert server.attributes["http.route"] == "/v1/x"  # type: ignore[attr-defined]


def test_the_worker_redacts_with_secrets_registered_after_it_started(otlp_receiver: OtlpReceiver) -> None:
    """The real export worker process: the run config's secrets reach it at its start, later ones with the
    next batch; a request's own secrets travel in its record."""
    late_secret = "registered-later-secret-987654"
    provider = build_tracer_provider(
        TelemetryConfig(sinks=["otel_trace"], otel_trace_endpoint=otlp_receiver.traces_endpoint)
    )
    tracer = provider.get_tracer("lamina")
    redaction.register_secrets([late_secret])
    try:
        activate(TelemetrySettings(tracer_provider=provider))
        token = redaction.REQUEST_SECRETS.set((REQUEST_SECRET,))
        server = tracer.start_span("server", kind=SpanKind.SERVER)
        path = f"/v1/x/{KNOWN_SECRET}/{late_secret}/{REQUEST_SECRET}"
        derive(server, "http.server", "GET", path, "/v1/x/{id}", 200, "req-2")
        server.end()  # in the request's context (the middleware's): its secrets go with the record
        redaction.REQUEST_SECRETS.reset(token)
        provider.shutdown()
    finally:
        deactivate()
        redaction._KNOWN.discard(late_secret)
        redaction._scrub_short.cache_clear()
    (span,) = otlp_receiver.spans()
    assert span.attributes["url.path"] == "/v1/x/***/***/***"
    assert span.attributes["http.route"] == "/v1/x/{id}" and span.attributes["lamina.request_id"] == "req-2"


def test_a_requests_spans_leave_no_reference_cycles() -> None:
    """Everything a request's telemetry makes is freed by reference counting: a cycle (a rider and its
    host pointing at each other once did) leaves its objects to the garbage collector, whose extra runs
    cost the server more than the spans themselves (docs/benchmarks.md, "Telemetry cost")."""
    import gc

    records = Records()
    provider, _ = _lean(records)
    _ARGS.clear()

    async def requests() -> int:
        await _request()  # first use: imports, caches
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                await _request()
            return gc.collect()
        finally:
            gc.enable()

    activate(TelemetrySettings(tracer_provider=provider))
    try:
        assert asyncio.run(requests()) == 0
    finally:
        deactivate()
    assert len(records.made) == 21 and len(records.spans()) == 42
