"""Traces of a real ``lamina run``, exported over OTLP/HTTP to a receiver the test runs, decoded and checked.

The upstream is the fake OpenAI server (lamina.testing.fake_openai): it is instant and scripted, and it
records the ``traceparent`` headers it receives, which no real model server here reports back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openai import OpenAI

from lamina.testing.otlp_receiver import OtlpReceiver, ReceivedSpan
from lamina.testing.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e

PROMPT = "the secret prompt 7f3a"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def run_config(fake: ServerProcess, traces_endpoint: str, **telemetry: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "tracing",
        "apis": ["inference", "telemetry"],
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "timeout": 5.0, "max_tokens": 16},
                }
            ],
            "telemetry": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {
                        "service_name": "lamina-test",
                        "sinks": ["otel_trace"],
                        "otel_trace_endpoint": traces_endpoint,
                        **telemetry,
                    },
                }
            ],
        },
        "models": [
            {"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok", "model_type": "llm"},
            {
                "model_id": "error500",
                "provider_id": "fake",
                "provider_model_id": "error500",
                "model_type": "llm",
            },
        ],
    }


def traceparent(trace_id: str = CALLER_TRACE, span_id: str = CALLER_SPAN, flags: str = "01") -> str:
    return f"00-{trace_id}-{span_id}-{flags}"


def chat(server: ServerProcess, *, stream: bool = False, headers: dict[str, str] | None = None) -> str:
    client = OpenAI(base_url=f"{server.url}/v1/openai/v1", api_key="none", max_retries=0)
    messages: Any = [{"role": "user", "content": PROMPT}]
    if not stream:
        answer = client.chat.completions.create(model="ok", messages=messages, extra_headers=headers)
        return answer.choices[0].message.content or ""
    chunks = client.chat.completions.create(
        model="ok",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans}


def fake_traceparents(fake: ServerProcess) -> list[dict[str, Any]]:
    return httpx.get(f"{fake.url}/_fake/traceparents").json()


@pytest.fixture
def traced(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess, otlp_receiver: OtlpReceiver
) -> Callable[..., ServerProcess]:
    def start(**telemetry: Any) -> ServerProcess:
        return start_lamina(run_config(fake_upstream, otlp_receiver.traces_endpoint, **telemetry))

    return start


def wait_for_trace(receiver: OtlpReceiver, trace_id: str, names: set[str]) -> dict[str, ReceivedSpan]:
    def arrived() -> dict[str, ReceivedSpan] | None:
        spans = by_name(receiver.trace(trace_id))
        return spans if names <= set(spans) else None

    return receiver.wait_for(arrived, what=f"spans {sorted(names)} of trace {trace_id}")


CHAT_SPANS = {"POST /v1/openai/v1/chat/completions", "chat ok"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_chat_completion_continues_the_callers_trace_to_the_upstream(
    traced: Callable[..., ServerProcess],
    otlp_receiver: OtlpReceiver,
    fake_upstream: ServerProcess,
    stream: bool,
) -> None:
    server = traced()
    caller = f"{CALLER_TRACE[:-4]}{'beef' if stream else 'cafe'}"
    assert chat(server, stream=stream, headers={"traceparent": traceparent(caller)})

    spans = wait_for_trace(otlp_receiver, caller, CHAT_SPANS)
    assert len(spans) == 2  # few spans per request: each costs to make and to export
    http = spans["POST /v1/openai/v1/chat/completions"]
    provider = spans["chat ok"]
    # The caller's span is the server span's parent; the provider call is the server span's child.
    assert (http.kind, http.parent_span_id) == ("SERVER", CALLER_SPAN)
    assert http.attributes["http.route"] == "/v1/openai/v1/chat/completions"
    assert http.attributes["http.request.method"] == "POST"
    assert http.attributes["http.response.status_code"] == 200
    assert http.resource["service.name"] == "lamina-test"
    # The router call (API, method, resource) is named on the request's span.
    assert http.attributes["lamina.api"] == "inference"
    assert http.attributes["lamina.method"] == "openai_chat_completion"
    assert http.attributes["lamina.resource.id"] == "ok"
    assert provider.parent_span_id == http.span_id
    attrs = provider.attributes
    assert attrs["lamina.provider.id"] == "fake" and attrs["lamina.provider.type"] == "remote::vllm"
    assert attrs["gen_ai.system"] == "remote::vllm" and attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "ok"
    assert "lamina.provider.model" not in attrs  # the same as the model's id: not said twice
    assert attrs["lamina.stream"] is stream
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    if stream:
        assert 0 < attrs["lamina.time_to_first_token"] <= (provider.end_ns - provider.start_ns) / 1e9
    # The provider's span (its stream) closes before the request's.
    assert provider.end_ns <= http.end_ns
    # The upstream got the trace: same trace id, the provider call's span as the parent.
    sent = [t for t in fake_traceparents(fake_upstream) if caller in t["traceparent"]]
    assert [t["traceparent"] for t in sent] == [traceparent(caller, provider.span_id)]


def test_without_traceparent_a_request_starts_its_own_trace(
    traced: Callable[..., ServerProcess], otlp_receiver: OtlpReceiver
) -> None:
    server = traced()
    httpx.get(f"{server.url}/v1/models").raise_for_status()
    (span,) = otlp_receiver.wait_for_spans(lambda s: s.name == "GET /v1/models")
    assert span.parent_span_id is None and span.kind == "SERVER"
    assert span.attributes["http.response.status_code"] == 200


def test_health_probes_and_metrics_scrapes_are_not_traced(
    traced: Callable[..., ServerProcess], otlp_receiver: OtlpReceiver
) -> None:
    """A load balancer's probe and Prometheus' scrape come every few seconds: a trace each would bury
    the requests in the store and at the collector (they still count in the HTTP metrics)."""
    server = traced()
    for path in ("/v1/health", "/metrics"):
        httpx.get(f"{server.url}{path}", headers={"traceparent": traceparent()}).raise_for_status()
    httpx.get(f"{server.url}/v1/models").raise_for_status()
    otlp_receiver.wait_for_spans(lambda s: s.name == "GET /v1/models")  # sent after the two above
    names = {s.name for s in otlp_receiver.spans()}
    assert not names & {"GET /v1/health", "GET /metrics"}, names


def test_route_template_and_upstream_failure(
    traced: Callable[..., ServerProcess], otlp_receiver: OtlpReceiver
) -> None:
    server = traced()
    trace_id = "5" * 32
    got = httpx.get(f"{server.url}/v1/models/ok", headers={"traceparent": traceparent(trace_id)})
    assert got.status_code == 200
    failed = httpx.post(
        f"{server.url}/v1/openai/v1/chat/completions",
        json={"model": "error500", "messages": [{"role": "user", "content": "hi"}]},
        headers={"traceparent": traceparent(trace_id, "1" * 16)},
    )
    assert failed.status_code == 502
    spans = wait_for_trace(otlp_receiver, trace_id, {"GET /v1/models/{model_id}", "chat error500"})
    assert spans["GET /v1/models/{model_id}"].attributes["url.path"] == "/v1/models/ok"
    provider = spans["chat error500"]
    assert (provider.status, provider.attributes["error.type"]) == ("ERROR", "502")
    assert "fake" in provider.status_message
    http = spans["POST /v1/openai/v1/chat/completions"]
    assert (http.status, http.attributes["error.type"], http.attributes["http.response.status_code"]) == (
        "ERROR",
        "502",
        502,
    )


def _text_of(spans: list[ReceivedSpan]) -> str:
    return json.dumps([(s.name, s.attributes, s.events) for s in spans], default=str)


def test_prompt_and_completion_text_are_redacted_by_default(
    traced: Callable[..., ServerProcess], otlp_receiver: OtlpReceiver
) -> None:
    server = traced()
    answer = chat(server, headers={"traceparent": traceparent("6" * 32)})
    answer_streamed = chat(server, stream=True, headers={"traceparent": traceparent("7" * 32)})
    wait_for_trace(otlp_receiver, "6" * 32, CHAT_SPANS)
    wait_for_trace(otlp_receiver, "7" * 32, CHAT_SPANS)
    exported = _text_of(otlp_receiver.spans())
    assert PROMPT not in exported
    assert answer not in exported and answer_streamed not in exported


def test_capture_content_puts_prompt_and_completion_on_the_inference_span(
    traced: Callable[..., ServerProcess], otlp_receiver: OtlpReceiver
) -> None:
    server = traced(capture_content=True)
    answer = chat(server, headers={"traceparent": traceparent("8" * 32)})
    streamed = chat(server, stream=True, headers={"traceparent": traceparent("9" * 32)})
    whole = wait_for_trace(otlp_receiver, "8" * 32, CHAT_SPANS)["chat ok"].attributes
    assert PROMPT in whole["gen_ai.input.messages"] and answer in whole["gen_ai.output.messages"]
    parts = wait_for_trace(otlp_receiver, "9" * 32, CHAT_SPANS)["chat ok"].attributes
    assert PROMPT in parts["gen_ai.input.messages"] and parts["gen_ai.output.messages"] == streamed


def test_sampling_ratio_zero_records_no_new_trace_but_follows_a_sampled_caller(
    traced: Callable[..., ServerProcess], otlp_receiver: OtlpReceiver
) -> None:
    server = traced(sampling_ratio=0.0)
    for _ in range(5):
        httpx.get(f"{server.url}/v1/models").raise_for_status()
    chat(server, headers={"traceparent": traceparent("a" * 32, flags="00")})  # the caller did not sample
    chat(server, headers={"traceparent": traceparent("b" * 32, flags="01")})  # the caller sampled
    wait_for_trace(otlp_receiver, "b" * 32, CHAT_SPANS)
    time.sleep(2.5)  # two more batch intervals: anything else sampled would have arrived
    assert {s.trace_id for s in otlp_receiver.spans()} == {"b" * 32}


def _assert_prompt(server: ServerProcess, n: int = 10) -> None:
    """``n`` requests each answer within a generous bound (the collector must not hold any up)."""
    for _ in range(n):
        started = time.monotonic()
        assert chat(server)
        assert time.monotonic() - started < 3.0, "a request waited on the trace exporter"


def _log_count(server: ServerProcess, event: str) -> int:
    return server.log_path.read_text().count(event)


@pytest.mark.parametrize("fault", ["down", "slow", "503", "500"])
def test_a_collector_in_trouble_never_slows_or_fails_a_request(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess, fault: str
) -> None:
    with OtlpReceiver() as receiver:
        if fault == "slow":
            receiver.behave(delay=10)
        elif fault != "down":
            receiver.behave(status=int(fault))
        endpoint = (
            f"http://127.0.0.1:{free_port()}/v1/traces" if fault == "down" else receiver.traces_endpoint
        )
        server = start_lamina(run_config(fake_upstream, endpoint))
        _assert_prompt(server)
        time.sleep(2.5)  # the batch processor tries to export (and fails) meanwhile
        _assert_prompt(server)
        deadline = time.monotonic() + 20
        while _log_count(server, "telemetry_export_failing") == 0 and time.monotonic() < deadline:
            _assert_prompt(server, 2)
            time.sleep(0.5)
        time.sleep(6)  # more failing batches (export timeout: 5 s) must not log again
        _assert_prompt(server, 3)
        assert _log_count(server, "telemetry_export_failing") == 1, server.log_tail()
        assert _log_count(server, "Failed to export") == 0  # the exporter's own per-batch lines are quiet
        if fault != "down":
            assert receiver.posts["traces"] >= 1
        if fault in ("500", "503"):
            assert receiver.spans() == []  # refused, not recorded (a slow collector records late)


def test_a_stream_the_client_leaves_ends_its_spans(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess, otlp_receiver: OtlpReceiver
) -> None:
    """``stall`` streams one chunk, then goes silent: the client reads it and goes away; the inference
    span must end then (cancelled, not failed) instead of waiting on the upstream."""
    config = run_config(fake_upstream, otlp_receiver.traces_endpoint)
    config["models"].append(
        {"model_id": "stall", "provider_id": "fake", "provider_model_id": "stall", "model_type": "llm"}
    )
    server = start_lamina(config)
    trace_id = "c" * 32
    body = {"model": "stall", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST",
        f"{server.url}/v1/openai/v1/chat/completions",
        json=body,
        headers={"traceparent": traceparent(trace_id)},
        timeout=10,
    ) as answer:
        assert answer.status_code == 200
        next(answer.iter_lines())  # the first chunk; then the client leaves
    spans = wait_for_trace(otlp_receiver, trace_id, {"POST /v1/openai/v1/chat/completions", "chat stall"})
    inference = spans["chat stall"]
    assert inference.attributes["lamina.cancelled"] is True and inference.status != "ERROR"
    assert inference.attributes["lamina.time_to_first_token"] > 0
    http = spans["POST /v1/openai/v1/chat/completions"]
    assert http.attributes["http.response.status_code"] in (200, 499) and http.status != "ERROR"
