"""CPU per request's spans: the OpenTelemetry SDK's tracer vs lamina_telemetry.lean_tracer, in process.

``python -m bench.lean_tracer [--requests N] [--rounds R] [--otlp]``. A "request" is what a chat
completion makes: a SERVER span (HTTP attributes, made current), an inference span (GenAI attributes,
made current, usage set at the end) and a provider-proxy CLIENT span, each ended; the W3C traceparent
is injected once (what an outgoing call does). Both tracers feed the same processors the telemetry
provider gives them: the trace store's StoreSpanProcessor (rows queued; the queue is emptied between
blocks, never written) and, with ``--otlp``, the export worker's PipeSpanProcessor (records marshalled
and piped to its real child process, which posts them to an OTLP receiver in another child process, so
neither's CPU is counted here; its queue bound is lifted so that no span is dropped, which would be
cheaper). Rounds alternate SDK and lean in the same minute; CPU is ``time.process_time`` (all this
process's threads, the pipe's included), not wall time: the machine is shared. Reports the median µs
per request over rounds.

Measured 2026-12-06 (2 shared cores, CPython 3.11.7, 5 rounds of 2000): store only, SDK 79.3 vs lean
24.7 µs/request; with ``--otlp``, SDK 99.7 vs lean 36.4 µs/request (all 63,000 spans arrived).
Through ``hatch run dev:bench telemetry --repeat 3 --duration 4`` (two runs a minute apart, each
interleaving off/on; noisy): added gateway CPU per chat request, non-streaming SDK +454 vs lean +282
µs (off 331/334), streaming SDK +535 vs lean +258 µs (off 635/654): still far from the 10% target.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Status, StatusCode


def _providers(endpoint: str | None) -> dict[str, tuple[Any, Any]]:
    from lamina_telemetry.config import TelemetryConfig
    from lamina_telemetry.lean_tracer import LeanTracerProvider
    from lamina_telemetry.store_writer import StoreSpanProcessor, StoreWriter
    from lamina_telemetry.tracing_setup import build_tracer_provider

    out = {}
    for impl in ("sdk", "lean"):
        writer = StoreWriter(None, ttl_seconds=3600)  # type: ignore[arg-type]  # only put_span is used
        processors = [StoreSpanProcessor(writer)]
        config = TelemetryConfig(
            sinks=["otel_trace"] if endpoint else [], otel_trace_endpoint=endpoint or "http://127.0.0.1:9"
        )
        if impl == "sdk":
            provider = build_tracer_provider(config, processors)
        else:
            provider = LeanTracerProvider(config.service_name, config.sampling_ratio)
            for p in processors:
                provider.add_span_processor(p)
            if endpoint:
                from lamina_telemetry.export_worker import PipeSpanProcessor

                provider.add_span_processor(
                    PipeSpanProcessor(config.otel_trace_endpoint, provider.resource.attributes, timeout=5.0)
                )
        for processor in _pipes(provider):
            processor.max_queue = 10**8
        out[impl] = (provider, writer)
    return out


def _pipes(provider: Any) -> list[Any]:
    from lamina_telemetry.tracing_setup import span_pipe

    pipe = span_pipe(provider)
    return [pipe] if pipe is not None else []


RECEIVER = """
import sys, time
from lamina.testing.otlp_receiver import OtlpReceiver
with OtlpReceiver(int(sys.argv[1])) as r:
    print("ready", flush=True)
    sys.stdin.read()
    print(len(r.spans()), flush=True)
"""


def one_request(tracer: trace.Tracer, carrier: dict[str, str]) -> None:
    server = tracer.start_span(
        "POST /v1/openai/v1/chat/completions",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "http.route": "/v1/openai/v1/chat/completions",
            "url.path": "/v1/openai/v1/chat/completions",
            "lamina.api": "inference",
            "lamina.method": "openai_chat_completion",
        },
    )
    token = otel_context.attach(trace.set_span_in_context(server))
    try:
        inference = tracer.start_span(
            "chat m1",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "remote::vllm",
                "gen_ai.request.model": "m1",
                "gen_ai.request.max_tokens": 16,
                "gen_ai.request.temperature": 0.0,
                "lamina.provider.id": "fake",
            },
        )
        token2 = otel_context.attach(trace.set_span_in_context(inference))
        try:
            proxy = tracer.start_span(
                "inference.openai_chat_completion",
                kind=SpanKind.CLIENT,
                attributes={"lamina.provider.id": "fake", "lamina.provider.type": "remote::vllm"},
            )
            carrier.clear()
            inject(carrier)
            proxy.set_attribute("http.response.status_code", 200)
            proxy.end()
            inference.set_attributes(
                {
                    "gen_ai.response.model": "m1",
                    "gen_ai.usage.input_tokens": 12,
                    "gen_ai.usage.output_tokens": 16,
                    "gen_ai.response.finish_reasons": ("stop",),
                }
            )
        finally:
            otel_context.detach(token2)
            inference.end()
        server.set_attribute("http.response.status_code", 200)
        server.set_status(Status(StatusCode.UNSET))
    finally:
        otel_context.detach(token)
        server.end()


def measure(provider: Any, writer: Any, requests: int) -> float:
    """CPU µs per request over ``requests`` requests."""
    tracer = provider.get_tracer("lamina")
    carrier: dict[str, str] = {}
    writer.spans.clear()
    start = time.process_time()
    for i in range(requests):
        one_request(tracer, carrier)
        if i % 1000 == 999:
            writer.spans.clear()  # the store's drain, which is not what is measured
    used = time.process_time() - start
    assert "traceparent" in carrier, "propagation injected nothing"
    return used / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.lean_tracer", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--otlp", action="store_true", help="also feed the export worker (a child process)")
    args = parser.parse_args(argv)
    receiver = None
    endpoint = None
    if args.otlp:
        from lamina.testing.processes import free_port

        port = free_port()
        receiver = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        endpoint = f"http://127.0.0.1:{port}/v1/traces"
    providers = _providers(endpoint)
    for provider, writer in providers.values():  # warm up (imports, caches)
        measure(provider, writer, 500)
    results: dict[str, list[float]] = {name: [] for name in providers}
    for _ in range(args.rounds):
        for name, (provider, writer) in providers.items():
            gc.collect()
            results[name].append(measure(provider, writer, args.requests))
    sdk, lean = statistics.median(results["sdk"]), statistics.median(results["lean"])
    print(f"requests/round={args.requests} rounds={args.rounds} otlp={args.otlp} (3 spans a request)")
    for name, values in results.items():
        print(
            f"  {name:5s} median {statistics.median(values):7.1f} µs/request  rounds: "
            + " ".join(f"{v:.1f}" for v in values)
        )
    print(f"  lean saves {sdk - lean:.1f} µs/request ({(sdk - lean) / sdk:.0%} of the SDK's)")
    for name, (provider, _) in providers.items():
        provider.shutdown()
        dropped = sum(p.dropped + p.lost for p in _pipes(provider))
        if args.otlp:
            print(f"  {name}: spans dropped or lost by the export worker: {dropped}")
    if receiver is not None:
        out, _ = receiver.communicate("", timeout=60)
        print(f"  spans at the OTLP receiver: {out.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
