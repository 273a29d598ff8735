"""What ``server.gc`` saves: gateway throughput and CPU per request with CPython's collector settings, with
the start-up heap frozen, and with Lamina's default (frozen, generation-0 threshold 7,000).

``python -m bench gc-tuning`` starts the bench upstream (canned OpenAI answers) and three ``lamina run``
processes on the same run config as ``bench gateway`` (remote::vllm in front of the upstream), differing
only in ``server.gc``: ``cpython`` (``freeze: false, gen0_threshold: 700``, what Python does by itself),
``freeze`` (``freeze: true, gen0_threshold: 700``) and ``tuned`` (the default). wrk at concurrency 16 runs
each beside a run of ``cpython`` (bench.paired); the gain is the median of the pairs' ratios, throughput
and the gateway's CPU time per request (from /proc). With ``--pin`` (the default on 2+ cores) the
gateways have CPU 1, everything else CPU 0.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from bench import report
from bench.gateway import (
    MESSAGES,
    MODEL,
    OPENAI_PATH,
    bench_setup,
    lamina_run_config,
    loadavg,
    start_gateway,
    start_upstream,
    stop_servers,
)
from bench.paired import pct, run_pairs
from bench.wrk import wrk_binary

TARGETS = {
    "cpython": ("CPython's settings (no freeze, threshold 700)", {"freeze": False, "gen0_threshold": 700}),
    "freeze": ("start-up heap frozen, threshold 700", {"freeze": True, "gen0_threshold": 700}),
    "tuned": ("Lamina's default: frozen, threshold 7,000", {}),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench gc-tuning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of wrk per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (each pairs every target with cpython)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--out", type=Path, help="write the result into this file (docs/benchmarks.md)")
    parser.add_argument("--work-dir", type=Path)
    return parser.parse_args(argv)


def start(work: Path, gateway_cpu: str | None, client_cpu: str | None) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    try:
        servers["upstream"] = start_upstream(work, client_cpu)
        base = lamina_run_config(servers["upstream"].url)
        for name, (_label, gc) in TARGETS.items():
            servers[name] = start_gateway({**base, "server": {"gc": gc}}, work, name, gateway_cpu)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = "hatch run dev:bench gc-tuning " + shlex.join(argv) if argv else "hatch run dev:bench gc-tuning"
    wrk_binary()
    setup = bench_setup(args.pin, args.work_dir, "lamina-bench-gc-")
    servers = start(setup.work, setup.gateway_cpu, setup.client_cpu)
    try:
        runs = run_pairs(
            servers, list(TARGETS), "cpython", {"model": MODEL, "messages": MESSAGES}, OPENAI_PATH,
            repeat=args.repeat, duration=args.duration, warmup=args.warmup,
            connections=args.connections, client_cpu=setup.client_cpu, work=setup.work,
        )  # fmt: skip
    finally:
        stop_servers(servers)
    info = setup.info
    lines = [
        "## Garbage collection (`server.gc`)",
        "",
        f"`{command}`: {info['date']}; {info['CPU']}, {info['Python']}, git {info['git']}; pinned "
        f"{setup.pinned}; load {setup.load_before} / {loadavg()}. OpenAI chat non-streaming through Lamina "
        f"to a canned upstream, c={args.connections}, {args.repeat} rounds of {args.duration:g} s runs, each "
        "target paired with a run of CPython's settings beside it; gains are the medians of the pairs' "
        "ratios, the other columns medians of every run.",
        "",
        "| server.gc | req/s | throughput gain | CPU/req change | p50 ms | gateway CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for target, (label, _gc) in TARGETS.items():
        cells = ["", ""]
        if target != "cpython":
            tput, cpu = runs.cost(target)
            cells = [pct(-tput), pct(cpu)]
        lines.append(
            f"| {label} | {runs.median('rps', target):,.0f} | {' | '.join(cells)} | "
            f"{runs.median('p50_ms', target):.2f} | {runs.median('cpu_us', target):.0f} |"
        )
    text = "\n".join(lines)
    print()
    print(text)
    if args.out:
        report.update_doc(args.out, text, section="gc-tuning")
        print(f"\nwrote {args.out}")
    return 0
