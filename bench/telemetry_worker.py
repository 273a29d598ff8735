"""The export worker's CPU a chat completion: its records path vs rebuilding SDK spans for the stock
encoder, in process.

``python -m bench telemetry-worker [--requests N] [--rounds R] [--out docs/benchmarks.md]``. Makes the
export records of N chat completions through the server's own telemetry calls (the SERVER span from
lamina.telemetry.http_spans with its router call, the inference span from the provider proxy around a
provider answering at once, the lean tracer's one record a request; each request with its own request
and response ids), then times what the export worker (lamina_telemetry.export_worker) does with them,
two ways, rounds alternating:

- ``stock``: rebuild each span as the SDK's ReadableSpan, encode with the OTLP exporter's
  ``encode_spans``, make the trace store's rows from the ReadableSpans (``store_writer.span_row``): the
  worker before session 17;
- ``records``: ``export_worker.flat_records`` (the deferred attributes built), ``otlp_records``'
  encoder and ``export_worker.record_rows``: the worker now.

Both include unmarshalling the records and building their deferred attributes, exclude posting and the
store's insert (the same for both). CPU is ``time.process_time`` of this process; the minimum and median
over rounds are reported (the machine is shared: the minimum is the steadier). In the server this work
runs in the worker process, on whatever core it gets; flat out on two cores it competes with the load
generator and the upstream, and what it cannot keep up with is dropped (docs/benchmarks.md, "Telemetry
cost").
"""

from __future__ import annotations

import argparse
import asyncio
import marshal
import shlex
import statistics
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench import report

ROUTE = "/v1/openai/v1/chat/completions"
BATCH = 512  # records a batch, as the gateway sends them (tracing_setup.MAX_EXPORT_BATCH_SIZE)


class _Keep:
    builds_derived = True  # as the export worker's processor: deferred attributes stay raw

    def __init__(self) -> None:
        self.records: list[bytes] = []

    def on_end(self, span: Any) -> None:
        self.records.append(marshal.dumps(span.export_record()))


class _Provider:
    async def openai_chat_completion(self, model: Any, request: Any) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": 1,
            "model": "bench-model",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
        }


def make_records(requests: int) -> list[bytes]:
    """The marshalled export records of ``requests`` chat completions (one record a request)."""
    from multidict import CIMultiDict

    from lamina.apis.inference import Inference, OpenAIChatCompletionRequest
    from lamina.apis.models import Model
    from lamina.apis.webmethod import routes_of
    from lamina.telemetry import http_spans, provider_proxy, state
    from lamina.telemetry.route_spans import RouteCall
    from lamina_telemetry.lean_tracer import LeanTracerProvider

    keep = _Keep()
    tracer_provider = LeanTracerProvider("bench")
    tracer_provider.add_span_processor(keep)
    state.activate(state.TelemetrySettings(tracer_provider=tracer_provider, meter_provider=None))
    provider = provider_proxy.wrap(_Provider(), "inference", "vllm", "remote::vllm")
    model = Model(identifier="bench-model", provider_resource_id="m", provider_id="vllm", model_type="llm")
    body = OpenAIChatCompletionRequest(model="bench-model", messages=[{"role": "user", "content": "hi"}])
    route = next(d for d in routes_of(Inference) if d.name == "openai_chat_completion")
    call = RouteCall(route, Inference, [])
    headers = CIMultiDict({"Content-Type": "application/json"})
    http = SimpleNamespace(path=ROUTE, method="POST", headers=headers)

    async def run() -> None:
        for _ in range(requests):
            handle = http_spans.start(http, ROUTE)  # type: ignore[arg-type]
            call.note(body)
            await provider.openai_chat_completion(model, body)
            http_spans.end(handle, 200, f"req-{uuid.uuid4().hex}")  # type: ignore[arg-type]

    try:
        asyncio.run(run())
    finally:
        state.deactivate()
    return keep.records


def stock(records: list[bytes]) -> int:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource

    from lamina_telemetry.export_worker import _Rebuilder
    from lamina_telemetry.store_writer import span_row, stored

    rebuild = _Rebuilder(Resource({"service.name": "bench"}))
    size = 0
    for i in range(0, len(records), BATCH):
        spans = [span for data in records[i : i + BATCH] for span in rebuild.each(marshal.loads(data))]
        size += len(encode_spans(spans).SerializePartialToString())
        rows = [span_row(span, 0) for span in spans if stored(span)]
        assert len(rows) == len(spans)
    return size


def with_records(encoder: Any) -> Any:
    from lamina_telemetry.export_worker import flat_records, record_rows

    def run(records: list[bytes]) -> int:
        size = 0
        for i in range(0, len(records), BATCH):
            flat = [span for data in records[i : i + BATCH] for span in flat_records(marshal.loads(data))]
            size += len(encoder.encode(flat))
            rows, _ = record_rows(flat, "bench", 0)
            assert len(rows) == len(flat)
        return size

    return run


def main(argv: list[str]) -> int:
    from bench.gateway_report import machine
    from lamina_telemetry.otlp_records import RecordEncoder

    parser = argparse.ArgumentParser(prog="bench telemetry-worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4096, help="chat completions a round (default 4096)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds per path, alternating (default 9)")
    parser.add_argument("--out", type=Path, default=None, help="update this section of this file")
    args = parser.parse_args(argv)
    command = "hatch run dev:bench telemetry-worker " + shlex.join(argv)
    records = make_records(args.requests)
    spans = sum(len(marshal.loads(r)[16] or ()) + 1 for r in records)
    paths = {"stock": stock, "records": with_records(RecordEncoder({"service.name": "bench"}))}
    sizes = {name: run(records) for name, run in paths.items()}  # warm up (imports, the attribute cache)
    assert sizes["stock"] == sizes["records"], f"the two paths encode differently: {sizes}"
    results: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, run in paths.items():
            start = time.process_time()
            run(records)
            results[name].append((time.process_time() - start) / args.requests * 1e6)
    info = machine()
    labels = {
        "stock": "stock: SDK ReadableSpan + encode_spans + span_row",
        "records": "records: flat_records + otlp_records + record_rows",
    }
    rows = [
        [
            labels[name],
            report.fmt_num(min(values), 1),
            report.fmt_num(statistics.median(values), 1),
            report.fmt_num(sizes[name] / args.requests, 0),
        ]
        for name, values in results.items()
    ]
    table = report.markdown_table(
        ["export worker path", "CPU µs/request (min)", "median", "OTLP bytes/request"], rows, "lrrr"
    )
    saved = min(results["stock"]) - min(results["records"])
    text = (
        "### The export worker's CPU per request\n\n"
        f"`{command}`: {info['date']}; {info['Python']}, git {info['git']}; {args.requests} chat "
        f"completions' records ({spans / args.requests:.1f} spans a request, one record a request, unique "
        f"request and response ids), batches of {BATCH}, {args.rounds} rounds per path alternating; this "
        "process's CPU time, unmarshalling and deferred attributes included, posting and the store's insert "
        f"excluded.\n\n{table}\n\nThe records path saves {saved:.1f} µs a request "
        f"({saved / min(results['stock']):.0%} of the stock path's).\n"
    )
    print(text)
    if args.out:
        report.update_doc(args.out, text, section="telemetry-worker")
        print(f"wrote {args.out}")
    return 0
