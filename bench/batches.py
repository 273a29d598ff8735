"""Batches: lines/s of a big chat batch through the Batches API, and what it does to interactive latency.

``python -m bench batches`` starts the bench upstream (``bench.upstream``, canned OpenAI answers at once)
and ``lamina run`` with ``remote::vllm`` in front of it, the files provider and the batches provider
(``inline::reference``); the inference provider has limits (``max_concurrent``, ``batch_max_share``:
docs/limits.md) so that interactive calls are served first. Then:

1. idle: ``--interactive`` sequential chat completions (c=1), their p50 and p90;
2. a ``--lines``-line chat batch (``POST /v1/files`` purpose ``batch``, ``POST /v1/batches``), polled until
   it ends: lines/s from its ``in_progress_at`` to its ``completed_at`` (and from create to done);
3. the same interactive requests again while the batch runs: p50 and p90, and the ratio to idle.

Target (issue 16): interactive p50 while a batch runs within 20% of the idle p50.

``--executors inline,ray1,ray2`` runs the same for each executor: ``inline`` (in-process, the default),
``rayN``: the ray executor (plugins/ray) on a local Ray cluster of N nodes (``lamina_ray.local_cluster``:
one CPU each, on loopback addresses), with one actor per node, each holding its own worker stack.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.gateway import MESSAGES, MODEL, _child_env, lamina_run_config

TARGET_RATIO = 1.20  # interactive p50 during a batch over idle p50


def run_config(
    upstream_url: str, work: Path, args: argparse.Namespace, ray: dict[str, Any] | None = None
) -> dict[str, Any]:
    config = lamina_run_config(upstream_url)
    if ray is not None:
        config["jobs"] = {"executor": "ray", "executor_config": ray}
    inference = config["providers"]["inference"][0]
    inference["limits"] = {"max_concurrent": args.max_concurrent, "batch_max_share": args.batch_share}
    config["providers"]["files"] = [
        {
            "provider_id": "localfs",
            "provider_type": "inline::localfs",
            "config": {
                "storage_dir": str(work / "files"),
                "metadata_store": {"type": "sqlite", "db_path": str(work / "files.db")},
            },
        }
    ]
    config["providers"]["batches"] = [
        {
            "provider_id": "reference",
            "provider_type": "inline::reference",
            "config": {
                "kvstore": {"type": "sqlite", "db_path": str(work / "batches.db")},
                "max_concurrent_requests_per_batch": args.per_batch,
            },
        }
    ]
    return config


def interactive(url: str, n: int) -> list[float]:
    """``n`` sequential chat completions; each one's latency in ms."""
    out = []
    with httpx.Client(timeout=60) as client:
        for _ in range(n):
            started = time.perf_counter()
            resp = client.post(f"{url}/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
            resp.raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 2 else values[0]


def run_batch(url: str, lines: int, during: list[list[float]], n_interactive: int) -> dict[str, Any]:
    """Upload and run a ``lines``-line batch; while it runs, time ``n_interactive`` requests once."""
    body = "\n".join(
        json.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": MODEL, "messages": MESSAGES},
            }
        )
        for i in range(lines)
    )
    with httpx.Client(timeout=120) as client:
        files = {"file": ("batch.jsonl", body.encode(), "application/jsonl")}
        file_id = client.post(f"{url}/v1/files", data={"purpose": "batch"}, files=files).json()["id"]
        created = time.time()
        batch = client.post(
            f"{url}/v1/batches",
            json={"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
        ).json()
        measuring: threading.Thread | None = None
        while True:
            batch = client.get(f"{url}/v1/batches/{batch['id']}").json()
            # Measured once lines are being answered: a Ray executor starts its actors with the first batch
            # (a worker stack each, seconds of CPU on this machine), which is not the batch's steady state.
            started = batch["status"] == "in_progress" and batch["request_counts"]["completed"] > 0
            if started and measuring is None:
                measuring = threading.Thread(target=lambda: during.append(interactive(url, n_interactive)))
                measuring.start()
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                break
            # Once it runs, poll once a second: a request counts as client traffic (and for 0.1 s after),
            # and a poll every 50 ms kept the batch yielding to clients, one line at a time, throughout.
            time.sleep(0.05 if measuring is None else 1.0)
        done = time.time()
    if measuring is not None:
        measuring.join()
    counts = batch["request_counts"]
    running = (batch.get("completed_at") or done) - (batch.get("in_progress_at") or created)
    return {
        "status": batch["status"],
        "completed": counts["completed"],
        "failed": counts["failed"],
        "lines_per_s": counts["completed"] / max(running, 1e-9),
        "wall_s": done - created,
        "overlap": measuring is not None,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench batches", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000, help="lines in the batch (default 10000)")
    parser.add_argument("--interactive", type=int, default=200, help="interactive requests per phase")
    parser.add_argument("--per-batch", type=int, default=16, help="max_concurrent_requests_per_batch")
    parser.add_argument("--max-concurrent", type=int, default=16, help="the inference provider's limit")
    parser.add_argument("--batch-share", type=float, default=0.75, help="its batch_max_share")
    parser.add_argument(
        "--executors",
        default="inline",
        help="comma-separated: inline, rayN (the ray executor on a local N-node cluster); default inline",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per executor; the median is reported")
    parser.add_argument("--out", type=Path, default=None, help="update the batches section of this file")
    return parser.parse_args(argv)


def measure(executor: str, upstream_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run: the batch and the interactive requests on a fresh server using ``executor``."""
    from contextlib import ExitStack

    from lamina.testing.processes import lamina_server

    with ExitStack() as stack:
        # Each run's server state (its databases: ~13 MB) goes with the run.
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lamina-bench-batches-run-")))
        ray = None
        if executor.startswith("ray"):
            from lamina_ray.local_cluster import LocalRayCluster

            nodes = int(executor[3:] or 1)
            cluster = stack.enter_context(
                LocalRayCluster(tempfile.mkdtemp(prefix="lrb", dir="/tmp"), workers=nodes - 1)
            )
            ray = {
                "address": cluster.address,
                "num_actors": nodes,
                "max_in_flight": args.per_batch,
                "apis": ["inference"],
            }
        env = {"LAMINA_LOG_LEVEL": "warning", "LAMINA_LOG_FORMAT": "json"}
        server = stack.enter_context(
            lamina_server(run_config(upstream_url, work, args, ray), work / "lamina", env=env)
        )
        interactive(server.url, 20)  # warm-up
        idle = interactive(server.url, args.interactive)
        during: list[list[float]] = []
        result = run_batch(server.url, args.lines, during, args.interactive)
        # The same server once the batch is done (on Ray: its actors still up, idle): what the executor's
        # mere presence costs, apart from the batch's work.
        after = interactive(server.url, args.interactive)
    busy = during[0] if during else []
    where = "in-process executor" if ray is None else f"ray executor, {ray['num_actors']} node(s) x 1 actor"
    return {"where": where, "result": result, "idle": idle, "busy": busy, "after": after}


def row(runs: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """One table row from ``--repeat`` runs of one executor: the run with the median p50 ratio, and every
    run's ratio (one run's ratio moves by tens of percent on this 2-core machine, quiet or not)."""
    for run in runs:
        busy = run["busy"]
        run["ratio"] = (pct(busy, 50) if busy else float("nan")) / pct(run["idle"], 50)
    ordered = sorted(runs, key=lambda r: r["ratio"])
    median = ordered[len(ordered) // 2]
    result, idle, busy = median["result"], median["idle"], median["busy"]
    each = ", ".join(f"{run['ratio']:.2f}" for run in runs)
    return [
        f"{args.lines:,}-line chat batch, {median['where']}",
        result["status"],
        f"{result['completed']:,} / {result['failed']:,}",
        report.fmt_num(result["lines_per_s"]),
        f"{result['wall_s']:.1f}",
        f"{pct(idle, 50):.2f} / {pct(idle, 90):.2f}",
        f"{pct(busy, 50):.2f} / {pct(busy, 90):.2f}" if busy else "-",
        f"{pct(median['after'], 50):.2f}",
        f"{median['ratio']:.2f}x ({each})",
        "met" if median["ratio"] <= TARGET_RATIO else "missed",
    ]


def main(argv: list[str]) -> int:
    from bench.gateway_report import machine
    from lamina.testing.processes import ServerProcess, free_port

    args = parse_args(argv)
    command = "hatch run dev:bench batches " + shlex.join(argv)
    work = Path(tempfile.mkdtemp(prefix="lamina-bench-batches-"))
    info = machine()
    port = free_port()
    argv_up = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--impl", "fast"]
    upstream = ServerProcess(
        argv_up, port, log_path=work / "upstream.log", env=_child_env(), ready_path="/v1/models"
    )
    with upstream:
        rows = [
            row([measure(name.strip(), upstream.url, args) for _ in range(args.repeat)], args)
            for name in args.executors.split(",")
            if name.strip()
        ]
    table = report.markdown_table(
        [
            "run",
            "status",
            "completed / failed",
            "lines/s",
            "create to done (s)",
            "interactive idle p50 / p90 (ms)",
            "interactive during the batch p50 / p90 (ms)",
            "interactive after it p50 (ms)",
            "p50 ratio: median (each run)",
            f"target <= {TARGET_RATIO:.2f}x",
        ],
        rows,
        "llrrrrrrrr",
    )
    text = (
        "## Batches (issue 16)\n\n"
        f"`{command}`: {info['date']}; {info['CPU']}, {info['Python']}, git {info['git']}; the bench "
        f"upstream answers at once; the inference provider's limits: max_concurrent {args.max_concurrent}, "
        f"batch_max_share {args.batch_share}; max_concurrent_requests_per_batch {args.per_batch}; "
        f"{args.interactive} sequential interactive chat completions idle, then as many while the batch "
        "runs (from its first answered line: a Ray executor starts its actors with the first batch), and as "
        "many again once it is done; "
        f"{args.repeat} runs per executor, each on a fresh server: the row is the run with the median "
        "ratio.\n\n"
        f"{table}\n"
    )
    print(text)
    if args.out:
        report.update_doc(args.out, text, section="batches")
        print(f"wrote {args.out}")
    return 0
