"""Batch agent throughput: rows/s of a batch agent run to completion via the API, against the fake upstream.

Starts the fake OpenAI upstream (``lamina.testing.fake_openai``: answers at once, so what is measured is
Lamina's own cost per row), a real MCP tool server (plugins/mcp/tests/mcp_test_server.py) and ``lamina
run`` pinned to one core (``taskset -c 0``; the upstream, the tool server and the client run on the
others) with inline::localfs datasetio and the inline::meta-reference agents provider. For each case it
registers a ``--rows``-row dataset (rows inline), creates the agent, POSTs ``/v1/batch-agents/jobs`` and
polls the run until it is completed; rows/s is rows over the time from the POST to the completed status
(per row: a session, a turn stored step by step, the results row appended, progress). Cases: the
``ok`` model with no tools (one model call per row), and ``tools1`` with the MCP group (a model call,
a real ``add`` tool call over MCP, a second model call). "rows/CPU-s" divides by the server process's
CPU time (user + system, from /proc). Each run is checked (every row completed) so a fast failure
never counts as throughput.
"""

from __future__ import annotations

import argparse
import os
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
MCP_TESTS = ROOT / "plugins" / "mcp" / "tests"


def _provider(provider_id: str, provider_type: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"provider_id": provider_id, "provider_type": provider_type, "config": config}


def run_config(fake_url: str, mcp_url: str) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "bench-batch-agents",
        "providers": {
            "inference": [_provider("fake", "remote::vllm", {"url": fake_url})],
            "datasetio": [_provider("localfs", "inline::localfs", {})],
            "tool_runtime": [_provider("mcp", "remote::model-context-protocol", {})],
            "agents": [_provider("meta-reference", "inline::meta-reference", {})],
        },
        "models": [
            {"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok"},
            {"model_id": "tools1", "provider_id": "fake", "provider_model_id": "tools1"},
        ],
        "tool_groups": [{"toolgroup_id": "mcp::t", "provider_id": "mcp", "mcp_endpoint": {"uri": mcp_url}}],
    }


def bench_run(url: str, pid: int, n: int, concurrency: int, tools: bool) -> dict[str, Any]:
    http = requests.Session()
    dataset_id = f"rows-{concurrency}-{int(tools)}"
    rows = [{"input": f"what is one plus one? ({i})"} for i in range(n)]
    dataset = {
        "dataset_id": dataset_id,
        "purpose": "eval/question-answer",
        "source": {"type": "rows", "rows": rows},
    }
    http.post(f"{url}/v1/datasets", json=dataset, timeout=120).raise_for_status()
    config: dict[str, Any] = {"model": "tools1" if tools else "ok", "instructions": "Use the tools."}
    if tools:
        config["toolgroups"] = ["mcp::t"]
    agent_id = http.post(f"{url}/v1/agents", json={"agent_config": config}, timeout=60).json()["agent_id"]
    body = {"agent_id": agent_id, "dataset_id": dataset_id, "max_concurrency": concurrency}
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    run = http.post(f"{url}/v1/batch-agents/jobs", json=body, timeout=60)
    run.raise_for_status()
    run_id = run.json()["id"]
    while True:
        status = http.get(f"{url}/v1/batch-agents/jobs/{run_id}", timeout=60).json()
        if status["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.05)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    assert status["status"] == "completed", status
    assert status["row_counts"] == {"total": n, "completed": n, "failed": 0}, status["row_counts"]
    what = "tools1 + MCP add (2 model calls, 1 tool call)" if tools else "ok, no tools (1 model call)"
    case = f"{n:,} rows, {what}, max_concurrency {concurrency}"
    return {"case": case, "rows": n, "wall": wall, "cpu": cpu}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench batch-agents", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500, help="rows of each run's dataset")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16], help="max_concurrency values")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    from lamina.testing.processes import ServerProcess, fake_openai_server, free_port, lamina_server

    results = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-batch-agents-") as tmp,
        fake_openai_server(Path(tmp)) as fake,
    ):
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(MCP_TESTS), os.environ.get("PYTHONPATH", "")]),
        }
        argv_mcp = [
            sys.executable,
            "-m",
            "mcp_test_server",
            "--port",
            str(port),
            "--transport",
            "streamable_http",
        ]
        with ServerProcess(
            argv_mcp, port, log_path=Path(tmp) / "mcp.log", env=env, ready_path="/health"
        ) as mcp:
            server = lamina_server(
                run_config(f"{fake.url}/v1", f"{mcp.url}/mcp"),
                Path(tmp) / "lamina",
                env={"LAMINA_LOG_LEVEL": "warning"},
            )
            server.argv = ["taskset", "-c", "0", *server.argv]  # the server on one core
            server.start()
            try:
                assert server.pid is not None
                for tools in (False, True):
                    for concurrency in args.concurrency:
                        results.append(bench_run(server.url, server.pid, args.rows, concurrency, tools))
            finally:
                server.stop()

    header = ["case", "rows/s (wall)", "rows/CPU-s (server)"]
    table = [
        [r["case"], f"{r['rows'] / r['wall']:,.1f}", f"{r['rows'] / max(r['cpu'], 1e-3):,.1f}"]
        for r in results
    ]
    print(console_table(header, table))
    if not args.no_doc:
        text = (
            "`hatch run dev:bench batch-agents` (server pinned to one core with `taskset -c 0`; the fake "
            "upstream answers at once and the MCP tool server runs on the other core, so this is Lamina's "
            "own cost per row: a session, a turn stored step by step, the results row appended, progress; "
            "a 2-core machine shared with other work at load ~5, so expect ±30%)\n\n"
            + markdown_table(header, table)
        )
        update_doc(DOC, text, section="batch-agents")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
