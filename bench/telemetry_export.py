"""What span export costs the process that makes the spans: in-process OTLP export vs the export worker.

``hatch run dev:python -m bench.telemetry_export [--requests N] [--rounds R]``. Each round makes N
"requests" of two spans shaped like a chat completion's (the SERVER span and the inference span, with
their attributes) through three tracer providers in turn, interleaved: no span processor ("none"), the
SDK's BatchSpanProcessor with the OTLP/HTTP exporter in this process ("in-process", what
lamina_telemetry did before), and lamina_telemetry.export_worker's PipeSpanProcessor ("worker"). It reads
this process's CPU time (every thread: the export thread included) from the first span to the end of
``force_flush``, so the number is what the gateway would pay, whatever else runs on the machine. The
OTLP receiver is a separate process that answers 200 without decoding.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from lamina.testing.processes import free_port

ROUTE = "/v1/openai/v1/chat/completions"
SERVER_ATTRS = {"http.request.method": "POST", "url.path": ROUTE, "http.route": ROUTE}
START_ATTRS = {
    "lamina.api": "inference",
    "lamina.provider.id": "fake",
    "lamina.provider.type": "remote::vllm",
    "lamina.method": "openai_chat_completion",
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "remote::vllm",
    "gen_ai.request.model": "m",
    "gen_ai.request.max_tokens": 16,
    "lamina.stream": False,
}
END_ATTRS = {
    "gen_ai.response.model": "m",
    "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 5,
    "gen_ai.response.finish_reasons": ("stop",),
}
RECEIVER = """
from aiohttp import web
async def answer(request):
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")
app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/v1/{signal}", answer)
web.run_app(app, host="127.0.0.1", port=%d, print=None, access_log=None)
"""


def provider(kind: str, endpoint: str) -> TracerProvider:
    from lamina_telemetry.export_worker import PipeSpanProcessor
    from lamina_telemetry.tracing_setup import ExportLog, batched

    made = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    if kind == "in-process":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, timeout=5)
        made.add_span_processor(batched(ExportLog(exporter, "otel_trace", endpoint)))
    elif kind == "worker":
        made.add_span_processor(
            PipeSpanProcessor(endpoint, made.resource.attributes, timeout=5, max_queue=1_000_000)
        )
    return made


def requests(made: TracerProvider, n: int) -> None:
    tracer = made.get_tracer("lamina")
    for _ in range(n):
        root = tracer.start_span(f"POST {ROUTE}", kind=trace.SpanKind.SERVER, attributes=SERVER_ATTRS)
        child = tracer.start_span("chat m", context=trace.set_span_in_context(root), attributes=START_ATTRS)
        child.set_attributes(END_ATTRS)
        child.end()
        root.set_attribute("http.response.status_code", 200)
        root.end()


def main(argv: list[str]) -> int:
    # A server's heap (BENCH_HEAP objects, e.g. 300000): what queued objects cost in garbage collection.
    heap = [{"k": [i]} for i in range(int(os.environ.get("BENCH_HEAP", "0")))]  # noqa: F841
    parser = argparse.ArgumentParser(prog="bench.telemetry_export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER % port])
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    results: dict[str, list[float]] = {"none": [], "in-process": [], "worker": []}
    try:
        time.sleep(2.0)
        for _ in range(args.rounds):
            for kind, runs in results.items():
                made: Any = provider(kind, endpoint)
                time.sleep(0.5)  # the worker's start-up is not a request's cost
                started = time.process_time()
                requests(made, args.requests)
                made.force_flush()
                runs.append(1e6 * (time.process_time() - started) / args.requests)
                made.shutdown()
    finally:
        receiver.kill()
    for kind, runs in results.items():
        each = [round(r) for r in runs]
        print(f"{kind:10} CPU µs per request (2 spans): median {statistics.median(runs):5.0f}  rounds {each}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
