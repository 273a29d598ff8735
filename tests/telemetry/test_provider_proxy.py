"""The provider wrapper: every provider call a span, nothing else about the provider changed.

In-process with the OpenTelemetry SDK's in-memory exporter and metric reader (the wire format is the
end-to-end tests' business: tests/telemetry/test_tracing_e2e.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.apis.models import Model
from lamina.apis.safety import RunShieldResponse, SafetyViolation
from lamina.config import parse_run_config
from lamina.errors import UpstreamError
from lamina.plugins import PluginManager
from lamina.specs import Api
from lamina.stack import Stack
from lamina.telemetry import TelemetrySettings, activate, deactivate, spans
from lamina.telemetry.provider_proxy import TracedProvider, unwrap, wrap
from lamina_telemetry.metrics_setup import LaminaMeterProvider


class Recorder:
    def __init__(self, capture: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.settings = TelemetrySettings(
            tracer_provider=tracer_provider,
            # lamina_telemetry's: its readers also collect the core's aggregates (lamina.telemetry.metrics).
            meter_provider=LaminaMeterProvider(metric_readers=[self.reader]),
            capture_content=capture,
        )

    def spans(self) -> dict[str, Any]:
        return {s.name: s for s in self.exporter.get_finished_spans()}

    def metric(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for point in m.data.data_points
        ]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    activate(rec.settings)
    yield rec
    deactivate()


class Runtime:
    """A provider with one of everything a router or the health monitor may touch."""

    tools_depend_on_request = True

    def __init__(self) -> None:
        self.calls = 0

    async def list_runtime_tools(self, tool_group: Any) -> list[str]:
        self.calls += 1
        return ["a", "b"]

    async def invoke_tool(self, tool_group: Any, tool_name: str, kwargs: dict[str, Any]) -> Any:
        raise UpstreamError("mcp-1", "the MCP server answered 500")

    async def stream(self, n: int) -> AsyncIterator[int]:
        return self._numbers(n)

    async def _numbers(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def events(self) -> AsyncIterator[str]:
        yield "x"
        yield "y"

    async def list_models(self) -> list[str]:
        return ["m"]

    def describe(self) -> str:
        return "sync"

    async def health(self) -> dict[str, str]:
        return {"status": "OK"}


def test_the_wrapper_changes_nothing_but_spans(recorder: Recorder) -> None:
    raw = Runtime()
    proxy = wrap(raw, "tool_runtime", "rt", "remote::thing")
    assert isinstance(proxy, Runtime) and type(proxy) is TracedProvider and unwrap(proxy) is raw
    assert wrap(proxy, "tool_runtime", "rt", "remote::thing") is proxy
    assert not hasattr(proxy, "register_toolgroup")  # a probe for an optional method still misses
    assert getattr(proxy, "unregister_toolgroup", None) is None
    assert proxy.tools_depend_on_request is True and proxy.describe() == "sync"
    proxy.calls = 5  # writes land on the provider
    assert raw.calls == 5 and proxy.calls == 5
    assert proxy.health.__self__ is raw  # lifecycle and health: the provider's own methods


async def test_a_provider_call_is_a_span_with_the_provider_and_api(recorder: Recorder) -> None:
    proxy = wrap(Runtime(), "tool_runtime", "rt", "remote::thing")
    assert await proxy.list_runtime_tools(object()) == ["a", "b"]
    span = recorder.spans()["tool_runtime.list_runtime_tools"]
    assert dict(span.attributes) == {
        "lamina.api": "tool_runtime",
        "lamina.method": "list_runtime_tools",
        "lamina.provider.id": "rt",
        "lamina.provider.type": "remote::thing",
    }
    assert span.status.status_code.name == "UNSET"


async def test_the_model_refresh_is_traced_only_inside_a_request(recorder: Recorder) -> None:
    """The stack's background model refresh calls list_models every minute: a root trace each time would
    fill a trace store with maintenance; inside a request's trace it is that request's work."""
    proxy = wrap(Runtime(), "inference", "up", "remote::vllm")
    assert await proxy.list_models() == ["m"]
    assert "inference.list_models" not in recorder.spans()
    with spans.span("GET /v1/models"):
        assert await proxy.list_models() == ["m"]
    assert "inference.list_models" in recorder.spans()


async def test_a_failed_call_is_an_error_span_and_a_provider_error_count(recorder: Recorder) -> None:
    proxy = wrap(Runtime(), "tool_runtime", "rt", "remote::thing")

    class Group:
        identifier = "mcp::weather"

    with pytest.raises(UpstreamError):
        await proxy.invoke_tool(Group(), "forecast", {"city": "Paris"})
    span = recorder.spans()["execute_tool forecast"]
    assert span.status.status_code.name == "ERROR" and "500" in span.status.description
    assert span.attributes["error.type"] == "502"
    assert span.attributes["gen_ai.tool.name"] == "forecast"
    assert span.attributes["lamina.tool_group.id"] == "mcp::weather"
    assert "gen_ai.tool.call.arguments" not in span.attributes  # redacted: capture_content is off
    (count,) = recorder.metric("lamina.provider.errors")
    assert count.value == 1
    assert dict(count.attributes) == {
        "lamina.provider.id": "rt",
        "lamina.provider.type": "remote::thing",
        "lamina.api": "tool_runtime",
        "http.response.status_code": 502,
    }


async def test_a_returned_stream_keeps_its_span_open_until_it_ends(recorder: Recorder) -> None:
    proxy = wrap(Runtime(), "tool_runtime", "rt", "remote::thing")
    stream = await proxy.stream(3)
    assert "tool_runtime.stream" not in recorder.spans()  # not ended: the stream is still open
    assert [i async for i in stream] == [0, 1, 2]
    assert "tool_runtime.stream" in recorder.spans()
    assert [e async for e in proxy.events()] == ["x", "y"]
    assert "tool_runtime.events" in recorder.spans()


async def test_a_stream_the_client_abandons_ends_its_span_as_cancelled_not_failed(recorder: Recorder) -> None:
    proxy = wrap(Runtime(), "tool_runtime", "rt", "remote::thing")
    stream = await proxy.stream(10)
    assert await anext(stream) == 0
    await stream.aclose()
    span = recorder.spans()["tool_runtime.stream"]
    assert span.attributes["lamina.cancelled"] is True and span.status.status_code.name == "UNSET"
    assert recorder.metric("lamina.provider.errors") == []


class Chat:
    async def openai_chat_completion(self, model: Model, request: OpenAIChatCompletionRequest) -> Any:
        if request.stream:
            return self._chunks()
        return {
            "id": "chatcmpl-1",
            "model": "upstream-name",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hello there"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
        }

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        yield {"id": "c2", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        for word in ("hel", "lo"):
            yield {"id": "c2", "model": "m", "choices": [{"index": 0, "delta": {"content": word}}]}
        yield {"id": "c2", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
        yield {"id": "c2", "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


MODEL = Model(identifier="smol", provider_id="p", provider_resource_id="smol-upstream", model_type="llm")


def _request(stream: bool) -> OpenAIChatCompletionRequest:
    return OpenAIChatCompletionRequest(
        model="smol",
        messages=[{"role": "user", "content": "say hello"}],
        stream=stream,
        max_tokens=5,
        temperature=0.5,
    )


async def test_an_inference_call_carries_genai_attributes_and_records_the_metrics(recorder: Recorder) -> None:
    proxy = wrap(Chat(), "inference", "p", "remote::vllm")
    await proxy.openai_chat_completion(MODEL, _request(False))
    attrs = dict(recorder.spans()["chat smol"].attributes)
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.system"] == "remote::vllm"
    assert (attrs["gen_ai.request.model"], attrs["lamina.provider.model"]) == ("smol", "smol-upstream")
    assert (attrs["gen_ai.request.max_tokens"], attrs["gen_ai.request.temperature"]) == (5, 0.5)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (7, 2)
    assert attrs["gen_ai.response.model"] == "upstream-name" and attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["lamina.stream"] is False and "lamina.time_to_first_token" not in attrs
    assert not any(k in attrs for k in ("gen_ai.input.messages", "gen_ai.output.messages"))
    tokens = {
        dict(p.attributes)["gen_ai.token.type"]: p.sum for p in recorder.metric("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 7, "output": 2}


async def test_a_streamed_inference_call_has_time_to_first_token_and_the_streams_usage() -> None:
    rec = Recorder(capture=True)
    activate(rec.settings)
    try:
        proxy = wrap(Chat(), "inference", "p", "remote::vllm")
        stream = await proxy.openai_chat_completion(MODEL, _request(True))
        assert len([c async for c in stream]) == 5
    finally:
        deactivate()
    attrs = dict(rec.spans()["chat smol"].attributes)
    assert attrs["lamina.stream"] is True and attrs["lamina.time_to_first_token"] > 0
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (3, 2)
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert "say hello" in attrs["gen_ai.input.messages"] and attrs["gen_ai.output.messages"] == "hello"
    (ttft,) = rec.metric("gen_ai.server.time_to_first_token")
    assert ttft.count == 1


async def test_with_telemetry_off_helpers_and_wrappers_record_nothing() -> None:
    assert spans.tracer() is None and spans.start_span("x") is None and not spans.recording()
    with spans.span("nothing") as span:
        assert span is None
    rec = Recorder()
    activate(rec.settings)
    proxy = wrap(Runtime(), "tool_runtime", "rt", "remote::thing")
    deactivate()  # a wrapped provider whose telemetry went off: calls pass straight through
    assert await proxy.list_runtime_tools(object()) == ["a", "b"]
    assert rec.exporter.get_finished_spans() == ()


def _stack_config(tmp_path: Path, telemetry: bool) -> Any:
    providers: dict[str, Any] = {
        "files": [
            {
                "provider_id": "localfs",
                "provider_type": "inline::localfs",
                "config": {"storage_dir": str(tmp_path / "f")},
            }
        ]
    }
    if telemetry:
        providers["telemetry"] = [
            {
                "provider_id": "meta-reference",
                "provider_type": "inline::meta-reference",
                "config": {"sinks": []},
            }
        ]
    doc = {
        "version": 2,
        "providers": providers,
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
    }
    return parse_run_config(doc, source="run.yaml", env={})


@pytest.mark.parametrize("telemetry", [False, True], ids=["off", "on"])
async def test_the_stack_wraps_its_providers_only_when_telemetry_is_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, telemetry: bool
) -> None:
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path / "home"))
    pm = PluginManager(strict=True, allow=("localfs", "telemetry"), deny=(), trace=False).load_entry_points()
    stack = Stack.build(_stack_config(tmp_path, telemetry), pm)
    await stack.start()
    try:
        served = stack.impls[Api.files]["localfs"]
        record = stack.providers[Api.files]["localfs"]
        assert (type(served) is TracedProvider) is telemetry
        assert unwrap(served) is record.impl and type(record.impl) is not TracedProvider
    finally:
        await stack.shutdown()


class Guard:
    async def run_shield(self, shield: Any, messages: list[Any], params: dict[str, Any]) -> RunShieldResponse:
        if "bad" in messages[0]:
            return RunShieldResponse(violation=SafetyViolation(violation_level="error", user_message="no"))
        return RunShieldResponse()


async def test_a_shield_run_carries_its_verdict(recorder: Recorder) -> None:
    proxy = wrap(Guard(), "safety", "guard", "inline::llama-guard")

    class Shield:
        identifier = "llama-guard"

    await proxy.run_shield(Shield(), ["fine"], {})
    safe = recorder.spans()["run_shield llama-guard"]
    recorder.exporter.clear()
    await proxy.run_shield(Shield(), ["bad"], {})
    unsafe = recorder.spans()["run_shield llama-guard"]
    assert (
        safe.attributes["lamina.shield.verdict"] == "safe"
        and "lamina.shield.violation_level" not in safe.attributes
    )
    assert unsafe.attributes["lamina.shield.verdict"] == "violation"
    assert unsafe.attributes["lamina.shield.violation_level"] == "error"
    assert unsafe.attributes["lamina.shield.id"] == "llama-guard"
    assert unsafe.status.status_code.name == "UNSET"  # a verdict is an answer, not a failure


def test_the_console_sink_prints_one_json_line_per_span_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from lamina_telemetry.config import TelemetryConfig
    from lamina_telemetry.tracing_setup import build_tracer_provider

    provider = build_tracer_provider(TelemetryConfig(sinks=["console"], service_name="console-test"))
    provider.get_tracer("t").start_span("printed", attributes={"k": "v"}).end()
    provider.shutdown()
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert line["name"] == "printed" and line["attributes"] == {"k": "v"}
    assert line["resource"]["attributes"]["service.name"] == "console-test"


async def test_an_abandoned_stream_counts_as_cancelled_in_the_inference_metrics(recorder: Recorder) -> None:
    proxy = wrap(Chat(), "inference", "p", "remote::vllm")
    stream = await proxy.openai_chat_completion(MODEL, _request(True))
    await anext(stream)
    await stream.aclose()
    (duration,) = recorder.metric("gen_ai.client.operation.duration")
    assert dict(duration.attributes)["error.type"] == "cancelled"
    assert recorder.metric("lamina.provider.errors") == []
