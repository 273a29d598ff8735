"""Span cost per request: the server's CPU time per chat completion with tracing on vs off.

``python -m bench.spans [--requests N] [--rounds R]``. Three ``lamina run`` servers in front of the
fake upstream (lamina.testing.fake_openai): telemetry off; on with the OTLP/HTTP trace sink (to an
OTLP receiver in this process); on with no sink at all (spans made, then dropped: the instrumentation
alone). Each round sends N sequential non-streamed chat completions to each server in turn (A/B/C in
the same minute, so the machine's other load hits all three alike) and reads the server process's
CPU time (utime + stime from /proc, including the SDK's export thread) before and after. CPU time,
not wall time: the machine is shared, and what tracing costs is CPU. Reports the median over rounds,
and the median of each round's difference to "off".
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.cpu import _read_cpu
from lamina.testing.otlp_receiver import OtlpReceiver
from lamina.testing.processes import ServerProcess, fake_openai_server, lamina_server


def run_config(fake: ServerProcess, telemetry: dict[str, Any] | None) -> dict[str, Any]:
    providers: dict[str, Any] = {
        "inference": [
            {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
        ]
    }
    if telemetry is not None:
        providers["telemetry"] = [
            {"provider_id": "meta-reference", "provider_type": "inline::meta-reference", "config": telemetry}
        ]
    return {
        "version": 2,
        "image_name": "bench-spans",
        "apis": ["inference", *(["telemetry"] if telemetry is not None else [])],
        "providers": providers,
        "models": [{"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok", "model_type": "llm"}],
    }


def _requests(server: ServerProcess, n: int) -> None:
    body = json.dumps({"model": "ok", "messages": [{"role": "user", "content": "hi"}]}).encode()
    for _ in range(n):
        request = urllib.request.Request(
            f"{server.url}/v1/openai/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as answer:
            answer.read()


def _cpu_us_per_request(server: ServerProcess, n: int) -> float:
    assert server.proc is not None
    before = _read_cpu(server.proc.pid)
    _requests(server, n)
    time.sleep(1.5)  # the batch processor exports what these requests made (its CPU counts too)
    after = _read_cpu(server.proc.pid)
    assert before is not None and after is not None
    return (after - before) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spans", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per server per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-spans-"))
    with OtlpReceiver() as receiver, fake_openai_server(work) as fake:
        configs = {
            "off": None,
            "otlp": {
                "sinks": ["otel_trace"],
                "otel_trace_endpoint": receiver.traces_endpoint,
                "prometheus": False,
            },
            "no sink": {"sinks": [], "prometheus": False},
        }
        servers = {
            name: lamina_server(run_config(fake, cfg), work / name, name=name)
            for name, cfg in configs.items()
        }
        try:
            for server in servers.values():
                server.start()
                _requests(server, 50)  # warm-up: imports, connection pools
            results: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, server in servers.items():
                    results[name].append(_cpu_us_per_request(server, args.requests))
        finally:
            for server in servers.values():
                server.stop()
        spans = len(receiver.spans())
    off = statistics.median(results["off"])
    print(f"server CPU per non-streamed chat completion, median of {args.rounds} rounds x {args.requests}:")
    for name, values in results.items():
        line = f"  {name:8} {statistics.median(values):7.0f} us"
        if name != "off":
            # Each round's own difference to "off" (same minute, same machine load), then their median.
            delta = statistics.median(v - o for v, o in zip(values, results["off"], strict=True))
            line += f"  (+{delta:.0f} us, +{100 * delta / off:.0f}% of off's median)"
        print(f"{line}   rounds: {', '.join(f'{v:.0f}' for v in values)}")
    print(f"spans exported to the receiver: {spans}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
