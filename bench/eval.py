"""Eval throughput: rows/s of run_eval to completion through the API, against the fake upstream.

Starts the fake OpenAI upstream (``lamina.testing.fake_openai``: answers at once, so what is measured
is Lamina's own cost per row) and ``lamina run`` pinned to one core (``taskset -c 0``; the upstream
and the client run on the others) with inline::localfs datasetio, inline::basic scoring and the
inline::meta-reference eval provider. For each ``max_concurrency`` asked for, it registers a
``--rows``-row dataset (rows inline) and a benchmark scored by basic::equality, POSTs run_eval (a
model candidate, max_tokens 8) and polls the job until it is completed; rows/s is rows over the
time from the POST to the completed status (generation, scoring each chunk, the chunked saves and
checkpoints). "rows/CPU-s" divides by the server process's CPU time (user +
system, from /proc), which a busy shared machine disturbs less. Each result is checked (every row
answered and scored) so a fast failure never counts as throughput.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.report import console_table, markdown_table, update_doc
from bench.scoring import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
FN = "basic::equality"
ANSWER = "Hello from the fake upstream."  # what the fake's `ok` model answers


def _provider(provider_id: str, provider_type: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"provider_id": provider_id, "provider_type": provider_type, "config": config}


def run_config(fake_url: str, concurrency: int, chunk_rows: int) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "bench-eval",
        "providers": {
            "inference": [_provider("fake", "remote::vllm", {"url": fake_url})],
            "scoring": [_provider("basic", "inline::basic", {})],
            "datasetio": [_provider("localfs", "inline::localfs", {})],
            "eval": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {
                        "max_concurrency": concurrency,
                        "chunk_rows": chunk_rows,
                        "run_eval_wait_seconds": 0,
                    },
                }
            ],
        },
        "models": [{"model_id": "candidate", "provider_id": "fake", "provider_model_id": "ok"}],
    }


def bench_run_eval(url: str, pid: int, n: int, concurrency: int, chunk_rows: int) -> dict[str, Any]:
    http = requests.Session()
    rows = [{"input_query": f"question {i}", "expected_answer": ANSWER} for i in range(n)]
    source = {"type": "rows", "rows": rows}
    dataset = {"dataset_id": "bench-rows", "purpose": "eval/question-answer", "source": source}
    http.post(f"{url}/v1/datasets", json=dataset, timeout=120).raise_for_status()
    benchmark = {"benchmark_id": "bench", "dataset_id": "bench-rows", "scoring_functions": [FN]}
    http.post(f"{url}/v1/eval/benchmarks", json=benchmark, timeout=60).raise_for_status()
    config = {
        "eval_candidate": {
            "type": "model",
            "model": "candidate",
            "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 8},
        }
    }
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    job = http.post(f"{url}/v1/eval/benchmarks/bench/jobs", json={"benchmark_config": config}, timeout=60)
    job.raise_for_status()
    job_id = job.json()["job_id"]
    while True:
        status = http.get(f"{url}/v1/eval/benchmarks/bench/jobs/{job_id}", timeout=60).json()
        if status["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.05)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    assert status["status"] == "completed", status
    result = http.get(f"{url}/v1/eval/benchmarks/bench/jobs/{job_id}/result", timeout=120).json()
    assert len(result["generations"]) == n, f"{len(result['generations'])} generations for {n} rows"
    accuracy = result["scores"][FN]["aggregated_results"]["accuracy"]["accuracy"]
    assert accuracy == 1.0, accuracy
    case = f"run_eval, {n:,} rows, max_concurrency {concurrency}, chunk_rows {chunk_rows}"
    return {"case": case, "rows": n, "wall": wall, "cpu": cpu}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench eval", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000, help="rows of the benchmark's dataset")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16], help="max_concurrency values")
    parser.add_argument("--chunk-rows", type=int, default=16, help="the provider's chunk_rows")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    from lamina.testing.processes import fake_openai_server, lamina_server

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp, fake_openai_server(Path(tmp)) as fake:
        for concurrency in args.concurrency:
            work = Path(tmp) / f"c{concurrency}"
            config = run_config(f"{fake.url}/v1", concurrency, args.chunk_rows)
            server = lamina_server(config, work, env={"LAMINA_LOG_LEVEL": "warning"})
            server.argv = ["taskset", "-c", "0", *server.argv]  # the server on one core
            server.start()
            try:
                assert server.pid is not None
                result = bench_run_eval(server.url, server.pid, args.rows, concurrency, args.chunk_rows)
                results.append(result)
            finally:
                server.stop()

    header = ["case", "rows", "rows/s (wall)", "rows/CPU-s (server)"]
    table = [
        [
            r["case"],
            f"{r['rows']:,}",
            f"{r['rows'] / r['wall']:,.0f}",
            f"{r['rows'] / max(r['cpu'], 1e-3):,.0f}",
        ]
        for r in results
    ]
    print(console_table(header, table))
    if not args.no_doc:
        text = (
            "`hatch run bench eval` (server pinned to one core with `taskset -c 0`; the fake upstream "
            "answers at once, so this is Lamina's own cost per row: generation through the Inference "
            "router, scoring each chunk, chunked saves and checkpoints)\n\n" + markdown_table(header, table)
        )
        update_doc(DOC, text, section="eval")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
