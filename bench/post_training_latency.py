"""What a training job costs the server's other requests: interactive latency idle vs while a job trains.

``hatch run dev:bench post-training --latency [--requests N] [--runs-in thread subprocess]``. For each
place training can run (the provider's ``runs_in``), a fresh ``lamina run`` (inline::localfs datasets,
inline::huggingface) answers ``--requests`` sequential ``GET /v1/models`` (a route that does no I/O: what
it measures is the event loop's and the GIL's availability), first idle, then while a full SFT job trains
the "small" random Llama (2.8 M parameters, batch 4), which is cancelled afterwards. The client runs in
this process, the server in its own; nothing is pinned (the job's torch threads and the server share the
machine's cores, as they would in a deployment).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.batches import pct
from bench.gateway import loadavg

QA = [(f"What is item {i} called?", f"Item {i} is called thing {i}.") for i in range(24)]


def _config(work: Path, runs_in: str) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(work / name)}

    return {
        "version": 2,
        "image_name": "bench-post-training-latency",
        "providers": {
            "datasetio": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"kvstore": sqlite("d.db")},
                }
            ],
            "post_training": [
                {
                    "provider_id": "huggingface",
                    "provider_type": "inline::huggingface",
                    "config": {"device": "cpu", "save_total_limit": 1, "runs_in": runs_in},
                }
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "jobs": {"progress_interval": 0.2},  # the steps/s column reads the job's progress
    }


def _timed(client: httpx.Client, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        client.get(f"{url}/v1/models").raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _one(runs_in: str, model: Path, work: Path, n: int) -> dict[str, Any]:
    from lamina.testing.processes import lamina_server

    with lamina_server(_config(work, runs_in), work, name=runs_in) as server, httpx.Client(timeout=120) as c:
        _timed(c, server.url, 50)  # warm-up
        idle = _timed(c, server.url, n)
        rows = [{"input_query": q, "expected_answer": a} for q, a in QA]
        dataset = c.post(
            f"{server.url}/v1/datasets",
            json={"purpose": "post-training/messages", "source": {"type": "rows", "rows": rows}},
        ).json()["identifier"]
        c.post(
            f"{server.url}/v1/post-training/supervised-fine-tune",
            json={
                "job_uuid": "bench",
                "model": str(model),
                "training_config": {
                    "n_epochs": 10_000,
                    "max_steps_per_epoch": 1000,
                    "gradient_accumulation_steps": 1,
                    "data_config": {
                        "dataset_id": dataset,
                        "batch_size": 4,
                        "shuffle": False,
                        "data_format": "instruct",
                    },
                    "optimizer_config": {
                        "optimizer_type": "adamw",
                        "lr": 1e-3,
                        "weight_decay": 0.0,
                        "num_warmup_steps": 0,
                    },
                },
                "hyperparam_search_config": {},
                "logger_config": {},
            },
        ).raise_for_status()

        def job() -> dict[str, Any]:
            got = c.get(f"{server.url}/v1/post-training/job/status", params={"job_uuid": "bench"})
            return got.json()

        while (state := job())["progress"]["done"] < 3:  # model loaded, trainer in its loop
            if state["status"] in ("failed", "cancelled", "completed"):
                raise RuntimeError(f"the training job ended early: {state['status']}: {state['error']}")
            time.sleep(0.2)
        before = state["progress"]["done"]
        started = time.perf_counter()
        busy = _timed(c, server.url, n)
        seconds = time.perf_counter() - started
        after = job()
        steps = after["progress"]["done"] - before
        if after["status"] != "in_progress":
            raise RuntimeError(f"the training job stopped while measuring: {after['status']}")
        c.post(f"{server.url}/v1/post-training/job/cancel", json={"job_uuid": "bench"}).raise_for_status()
    return {"idle": idle, "busy": busy, "steps_per_s": steps / seconds}


def latency(runs_in: list[str], n: int) -> int:
    from lamina_post_training_huggingface.tiny_model import build_tiny_llama

    print(f"load average before: {loadavg()}")
    print(
        "| training runs in | idle p50 / p99 ms | while training p50 / p99 ms | p50 ratio | p99 ratio "
        "| training steps/s meanwhile |\n|---|---|---|---|---|---|"
    )
    with tempfile.TemporaryDirectory(prefix="bench-pt-") as tmp:
        texts = [f"{q} {a}" for q, a in QA] * 3
        model = build_tiny_llama(Path(tmp) / "model", texts, hidden_size=256, layers=4, heads=8)
        for where in runs_in:
            got = _one(where, model, Path(tmp) / where, n)
            idle, busy = got["idle"], got["busy"]
            cells = [
                where,
                f"{pct(idle, 50):.2f} / {pct(idle, 99):.2f}",
                f"{pct(busy, 50):.2f} / {pct(busy, 99):.2f}",
                f"{pct(busy, 50) / pct(idle, 50):.1f}x",
                f"{pct(busy, 99) / pct(idle, 99):.1f}x",
                f"{got['steps_per_s']:.1f}",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
    print(f"load average after: {loadavg()}")
    return 0
