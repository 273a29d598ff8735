"""``python -m bench <benchmark> [options]``; ``hatch run bench ...`` runs this."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "gateway": "gateway overhead: wrk direct to a fake upstream and through Lamina; streamed-chunk latency",
    "local": "local inference: tokens/s, first token, 4 streams, embeddings/s through Lamina vs direct",
    "retrieval": "vector IO per provider: insert chunks/s, query p50/p99, recall@10, direct vs Lamina",
    "safety": "shields on the labelled prompt set: precision, recall, run-shield p50/p99 through Lamina",
    "lone": "c=1: embeddings and prompt-guard through the API vs the same model call in-process",
    "tools": "tool calling on the local model: calls vs prose per tool format, forced calls, false calls",
    "agents": "agent turns with 3 MCP tool calls: the loop's own time per step, CPU per turn, 200 at once",
    "scoring": "basic::equality (score, score-batch) and basic::bfcl (score) rows/s via the API, one core",
    "eval": "run_eval rows/s to completion through the API on one core, against the fake upstream",
    "batch-agents": "a batch agent run's rows/s via the API on one core: no tools, an MCP tool call per row",
    "batches": "a 10,000-line chat batch: lines/s in-process (and on Ray: --executors inline,ray1,ray2), "
    "interactive p50 idle vs while it runs",
    "jobs": "the job system in-process: submit + complete per job and a progress write, sqlite and postgres",
    "telemetry": "telemetry off vs on (OTLP + sqlite + Prometheus): gateway req/s and CPU per request, c=16",
    "telemetry-instructions": "telemetry off vs on: the gateway's instructions per request under callgrind",
    "telemetry-calls": "telemetry off vs on: Python calls per chat completion (cProfile; load-independent)",
    "telemetry-worker": "the telemetry export worker's CPU per chat completion: records path vs SDK spans",
    "trace-store": "the trace store's insert CPU per request as it grows: its layout now vs before step 8",
    "gc-tuning": "server.gc: CPython's collector settings vs a frozen heap vs Lamina's default, c=16",
    "auth": "auth off vs a JWT (JWKS) vs a Lamina API key: gateway req/s and CPU per request, c=16",
    "datasets": "datasetio: iterrows rows/s on a generated CSV, deep pages, peak RSS over a 1 GB CSV",
    "post-training": "training tokens/s on tiny random Llamas: SFT full vs LoRA, and DPO (dev env: torch); "
    "--latency: request p50/p99 idle vs while a job trains",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print("usage: python -m bench <benchmark> [options]   (hatch run bench <benchmark> [options])\n")
        for name, what in BENCHMARKS.items():
            print(f"  {name:10} {what}")
        print("\n`python -m bench <benchmark> --help` lists a benchmark's options.")
        print("regenerate docs/benchmarks.md: hatch run bench gateway --out docs/benchmarks.md (~3 min)")
        print("                               hatch run bench local (~3 min)")
        print("                               hatch run bench retrieval (100k chunks, all providers)")
        print("                               hatch run bench safety (~5 min)")
        print("                               hatch run bench lone (~1 min; not written to the docs)")
        print("                               hatch run bench tools (~5 min)")
        print("                               hatch run bench agents --responses --out docs/benchmarks.md")
        print("                               hatch run bench scoring (~1 min)")
        print("                               hatch run bench eval (~1 min)")
        print("                               hatch run dev:bench batch-agents (~2 min)")
        print("                               hatch run bench datasets (~5 min; writes 1 GB to /tmp)")
        print(
            "                               hatch run dev:bench telemetry --out docs/benchmarks.md (~2 min)"
        )
        print("                               hatch run dev:bench telemetry-instructions (~5 min)")
        print("                               hatch run dev:bench telemetry-calls (~1 min)")
        print("                               hatch run dev:bench telemetry-worker (~1 min)")
        print("                               hatch run dev:bench trace-store (~2 min)")
        print("                               hatch run dev:bench gc-tuning --out docs/benchmarks.md")
        print("                               hatch run dev:bench post-training (~10 min; by hand)")
        print("                               hatch run dev:bench post-training --latency (~2 min)")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    # Each benchmark is the module of its name (``batch-agents``: bench.batch_agents), run by its main().
    module = importlib.import_module(f"bench.{argv[0].replace('-', '_')}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
