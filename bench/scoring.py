"""Scoring throughput: basic::equality rows/s through the API, score (rows inline) and score-batch;
basic::bfcl rows/s through score.

Starts ``lamina run`` pinned to one core (``taskset -c 0``; the client runs on the others) with the
``inline::basic`` scoring provider (and ``inline::localfs`` datasetio for score-batch, when installed),
then:

- ``score``: POSTs ``--rows`` rows per request to ``/v1/scoring/score`` with ``basic::equality``
  (half the rows equal), ``--requests`` times after one warm-up; the body is encoded once, before
  timing, so the client's JSON work is not counted;
- ``score-batch``: registers a CSV of ``--batch-rows`` rows (a file:// URI) as a dataset and POSTs
  ``/v1/scoring/score-batch``, which reads it through DatasetIO in pages;
- ``bfcl``: POSTs ``--bfcl-rows`` BFCL rows per request to ``/v1/scoring/score`` with ``basic::bfcl``
  (Python, Java and JavaScript answers; half of them wrong), ``--requests`` times after one warm-up;
- ``basic::ifeval``: ``--ifeval-rows`` IFEval-shaped rows (``bench/ifeval_rows.py``) per ``score``
  request, 3 requests after one warm-up: milliseconds a row (language detection), not microseconds.

Rows/s is rows over wall time; "rows/CPU-s" is rows over the server process's CPU time (user + system,
from /proc), which a busy shared machine disturbs less; peak RSS is the server's high-water mark
(VmHWM) after the case. Each answer is checked (rows scored, accuracy 0.5) so a fast error never
counts as throughput.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench import ifeval_rows
from bench.report import console_table, markdown_table, update_doc

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
FN = "basic::equality"


def rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "input_query": f"What is {i} + {i}?",
            "generated_answer": str(2 * i if i % 2 == 0 else 2 * i + 1),
            "expected_answer": str(2 * i),
        }
        for i in range(n)
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_config(with_datasets: bool) -> dict[str, Any]:
    providers: dict[str, Any] = {
        "scoring": [{"provider_id": "basic", "provider_type": "inline::basic", "config": {}}]
    }
    if with_datasets:
        localfs = {"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}
        providers["datasetio"] = [localfs]
    return {"version": 2, "image_name": "bench-scoring", "providers": providers}


def datasetio_installed() -> bool:
    from lamina.plugins import load_plugin_manager
    from lamina.specs import Api

    try:
        return "inline::localfs" in load_plugin_manager().provider_specs(Api.datasetio)
    except Exception:
        return False


def bfcl_rows(n: int) -> list[dict[str, Any]]:
    """BFCL rows as Llama Stack's bfcl_v3 carries them: a third each Python (parallel), Java, JavaScript;
    every other answer wrong."""
    params = {"type": "dict", "properties": {"w": {"type": "integer"}, "h": {"type": "integer"}}}
    function = json.dumps([{"name": "Screen.resize", "parameters": {**params, "required": ["w", "h"]}}])
    truth = [{"Screen.resize": {"w": [800], "h": [600]}}]
    cases = [
        ("parallel_1", "Python", truth * 2, "[Screen_resize(w=800, h=600), Screen.resize(h=600, w={w})]"),
        ("java_1", "Java", truth, "[Screen.resize(w={w}, h=600)]"),
        ("javascript_1", "JavaScript", truth, "[Screen.resize(w={w}, h=600)]"),
    ]
    out = []
    for i in range(n):
        id_, language, gt, answer = cases[i % 3]
        width = 800 if i % 2 == 0 else 801
        out.append(
            {
                "id": id_,
                "language": language,
                "function": function,
                "ground_truth": json.dumps(gt),
                "generated_answer": answer.format(w=width),
            }
        )
    return out


def check(answer: dict[str, Any], n: int, fn: str = FN) -> None:
    result = answer["results"][fn]
    assert len(result["score_rows"]) == n, f"{len(result['score_rows'])} rows scored, {n} sent"
    assert result["aggregated_results"]["accuracy"]["accuracy"] == 0.5, result["aggregated_results"]


def bench_score(url: str, pid: int, n: int, requests_n: int, fn: str = FN) -> dict[str, Any]:
    session = requests.Session()
    input_rows = bfcl_rows(n) if fn == "basic::bfcl" else rows(n)
    body = json.dumps({"input_rows": input_rows, "scoring_functions": {fn: None}}).encode()
    headers = {"Content-Type": "application/json"}
    response = session.post(f"{url}/v1/scoring/score", data=body, headers=headers, timeout=300)
    response.raise_for_status()
    check(response.json(), n, fn)  # warm-up
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    for _ in range(requests_n):
        response = session.post(f"{url}/v1/scoring/score", data=body, headers=headers, timeout=300)
        response.raise_for_status()
        answer = response.json()
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    check(answer, n, fn)
    total = n * requests_n
    case = f"score, {n:,} rows inline x {requests_n}" + ("" if fn == FN else f" ({fn})")
    return {"case": case, "rows": total, "wall": wall, "cpu": cpu, "rss": peak_rss_mb(pid)}


def bench_ifeval(url: str, pid: int, n: int, requests_n: int = 3) -> dict[str, Any]:
    fn = "basic::ifeval"
    session = requests.Session()
    body = json.dumps({"input_rows": ifeval_rows.rows(n), "scoring_functions": {fn: None}}).encode()
    headers = {"Content-Type": "application/json"}
    answer: dict[str, Any] = {}
    cpu0, t0 = 0.0, 0.0
    for i in range(requests_n + 1):  # the first warms up (loads nltk and langdetect's profiles)
        if i == 1:
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        response = session.post(f"{url}/v1/scoring/score", data=body, headers=headers, timeout=600)
        response.raise_for_status()
        answer = response.json()
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    result = answer["results"][fn]
    assert len(result["score_rows"]) == n, f"{len(result['score_rows'])} rows scored, {n} sent"
    assert 0 < result["aggregated_results"]["weighted_average"]["weighted_average"] < 1, result[
        "aggregated_results"
    ]
    case = f"score, basic::ifeval, {n:,} IFEval-shaped rows inline x {requests_n}"
    return {"case": case, "rows": n * requests_n, "wall": wall, "cpu": cpu, "rss": peak_rss_mb(pid)}


def bench_score_batch(url: str, pid: int, n: int, work: Path) -> dict[str, Any]:
    path = work / "equality.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["input_query", "generated_answer", "expected_answer"])
        writer.writeheader()
        writer.writerows(rows(n))
    session = requests.Session()
    register = {
        "dataset_id": "bench-equality",
        "purpose": "eval/question-answer",
        "source": {"type": "uri", "uri": path.as_uri()},
    }
    session.post(f"{url}/v1/datasets", json=register, timeout=60).raise_for_status()
    body = {"dataset_id": "bench-equality", "scoring_functions": {FN: None}, "save_results_dataset": False}
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    response = session.post(f"{url}/v1/scoring/score-batch", json=body, timeout=600)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    response.raise_for_status()
    check(response.json(), n)
    case = f"score-batch, a {n:,}-row CSV (file://)"
    return {"case": case, "rows": n, "wall": wall, "cpu": cpu, "rss": peak_rss_mb(pid)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scoring", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per score request")
    parser.add_argument("--requests", type=int, default=10, help="score requests timed")
    parser.add_argument("--batch-rows", type=int, default=1_000_000, help="rows of the score-batch dataset")
    parser.add_argument("--bfcl-rows", type=int, default=2_000, help="rows per basic::bfcl score request")
    parser.add_argument(
        "--ifeval-rows", type=int, default=500, help="rows per basic::ifeval request (0: skip)"
    )
    parser.add_argument("--only-ifeval", action="store_true", help="measure basic::ifeval alone")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    from lamina.testing.processes import lamina_server

    with_datasets = datasetio_installed()
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        work = Path(tmp)
        server = lamina_server(run_config(with_datasets), work, env={"LAMINA_LOG_LEVEL": "warning"})
        server.argv = ["taskset", "-c", "0", *server.argv]  # the server on one core
        server.start()
        try:
            assert server.pid is not None
            results = (
                [] if args.only_ifeval else [bench_score(server.url, server.pid, args.rows, args.requests)]
            )
            if with_datasets and not args.only_ifeval:
                results.append(bench_score_batch(server.url, server.pid, args.batch_rows, work))
            results.append(bench_score(server.url, server.pid, args.bfcl_rows, args.requests, "basic::bfcl"))
            if args.ifeval_rows:
                results.append(bench_ifeval(server.url, server.pid, args.ifeval_rows))
        finally:
            server.stop()

    header = ["case", "rows", "rows/s (wall)", "rows/CPU-s (server)", "server peak RSS"]
    table = [
        [
            r["case"],
            f"{r['rows']:,}",
            f"{r['rows'] / r['wall']:,.0f}",
            f"{r['rows'] / max(r['cpu'], 0.001):,.0f}",
            f"{r['rss']:,.0f} MB",
        ]
        for r in results
    ]
    print(console_table(header, table))
    if not with_datasets:
        print("score-batch: not measured (no datasetio provider inline::localfs installed)")
    if not args.no_doc:
        command = "hatch run bench scoring"
        text = (
            f"`{command}` (server pinned to one core with `taskset -c 0`; target: >= 20,000 rows/s for "
            f"basic::equality through the API)\n\n" + markdown_table(header, table)
        )
        update_doc(DOC, text, section="scoring")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
