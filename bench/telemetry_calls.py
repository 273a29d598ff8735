"""Telemetry's cost in Python calls: the calls one chat completion makes, telemetry off vs on (cProfile).

``python -m bench telemetry-calls`` serves the same run config as ``bench telemetry`` (remote::vllm in
front of the bench's fast upstream, a separate process) from this process, sends ``--requests``
sequential OpenAI chat completions after a warm-up, and counts the function calls cProfile sees while
they run: the gateway's and the client's (the client's are the same for every target, so the difference
is the gateway's). cProfile counts each resumption of a coroutine as a call.

Why a third measure beside ``bench telemetry`` (CPU time and throughput) and ``bench
telemetry-instructions`` (callgrind): on this shared machine both of those move with the load (CPU time
directly; instructions per request through the event loop's batching, since a loaded gateway completes
fewer requests per loop turn). Call counts of a sequential run barely move: within about 1% of the total
between runs, loaded or not (what varies is background work by the clock: the inference store's writer,
the loop's turns), so a change to telemetry's request path can be judged by them at once. They are not
time: a C call (``dict.get``) costs a fraction of a Python one. The table lists the Python-level
functions telemetry adds, the ones to remove next.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench import report
from bench.gateway import MESSAGES, MODEL, OPENAI_PATH, _child_env, lamina_run_config
from bench.telemetry import PARTS, CountingReceiver, telemetry_run_config

TARGETS = {
    "off": "telemetry off",
    "on": "telemetry on: otel_trace + otel_metric + sqlite, prometheus: true",
    **{part: f"telemetry on, {PARTS[part][0]}" for part in ("none", "otlp", "sqlite")},
}
Counts = dict[str, float]  # "file:line:function" -> calls per request


def _config(target: str, upstream: str, receiver: CountingReceiver, work: Path) -> dict[str, Any]:
    if target == "off":
        return lamina_run_config(upstream)
    if target == "on":
        return telemetry_run_config(upstream, receiver, work)
    _label, sinks, prometheus = PARTS[target]
    return telemetry_run_config(upstream, receiver, work, sinks, prometheus)


def _name(key: tuple[str, int, str]) -> str:
    path, line, function = key
    if path == "~":
        return function  # a C function: "<built-in method builtins.len>"
    for marker in ("site-packages/", "/src/", "/core/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}:{function}"


async def _serve_and_count(config: dict[str, Any], work: Path, requests: int) -> Counts:
    import aiohttp
    from aiohttp import web

    from lamina.cli import _pm, load_config_or_distribution
    from lamina.server.app import create_app
    from lamina.stack import Stack
    from lamina.testing.processes import free_port

    path = work / "run.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    pm = _pm()
    stack = Stack.build(load_config_or_distribution(str(path), {}, pm), pm)
    runner = web.AppRunner(create_app(stack))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}{OPENAI_PATH}"
    body = {"model": MODEL, "messages": MESSAGES}
    profile = cProfile.Profile()
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(50):  # warm-up: caches, first-use imports, connections
                async with session.post(url, json=body) as response:
                    if response.status != 200:
                        text = await response.text()
                        raise RuntimeError(f"warm-up request failed: {response.status} {text}")
                    await response.read()
            profile.enable()
            for _ in range(requests):
                async with session.post(url, json=body) as response:
                    await response.read()
            profile.disable()
    finally:
        await runner.cleanup()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return {_name(key): value[1] / requests for key, value in stats.items()}


def measure(target: str, upstream: str, receiver: CountingReceiver, work: Path, requests: int) -> Counts:
    return asyncio.run(_serve_and_count(_config(target, upstream, receiver, work), work, requests))


def render(args: argparse.Namespace, results: dict[str, Counts], info: dict[str, str]) -> str:
    off = results["off"]
    rows = []
    for target, counts in results.items():
        total = sum(counts.values())
        python = sum(n for name, n in counts.items() if not name.startswith("<"))
        added = total - sum(off.values()) if target != "off" else None
        added_py = python - sum(n for name, n in off.items() if not name.startswith("<"))
        rows.append(
            [
                TARGETS[target],
                report.fmt_num(total, 1),
                report.fmt_num(python, 1),
                f"{added:+.1f}" if added is not None else "",
                f"{added_py:+.1f}" if added is not None else "",
            ]
        )
    table = report.markdown_table(
        [
            "gateway (sequential OpenAI chat completions)",
            "calls/request",
            "of them Python functions",
            "added",
            "added Python functions",
        ],
        rows,
        "lrrrr",
    )
    on = results.get("on") or next(iter(results.values()))
    added = sorted(
        ((n - off.get(name, 0.0), name) for name, n in on.items() if not name.startswith("<")), reverse=True
    )
    top = [[name, f"{n:.1f}"] for n, name in added[: args.top] if n >= 0.5]
    top_table = report.markdown_table(["Python function (telemetry on)", "added calls/request"], top, "lr")
    return (
        "### Telemetry cost in Python calls per request\n\n"
        f"`{info['command']}`: {info['when']}; {info['machine']}; cProfile over {args.requests} sequential "
        "chat completions after 50 unrecorded, the gateway in the bench's process (its calls and the "
        "client's: the client's are the same for every target); a coroutine's resumptions count as calls. "
        "Repeatable within about 1% of the total between runs, whatever the machine's load."
        f"\n\n{table}\n\nThe Python functions telemetry adds most calls to:\n\n{top_table}\n"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench telemetry-calls", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=300, help="profiled requests per target (default 300)"
    )
    parser.add_argument(
        "--targets", nargs="+", default=["off", "on"], choices=list(TARGETS), help="default: off on"
    )
    parser.add_argument("--top", type=int, default=15, help="added Python functions listed (default 15)")
    parser.add_argument("--out", type=Path, default=None, help="update this section of this file")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    from bench.gateway_report import machine
    from lamina.logging import configure_logging
    from lamina.testing.processes import ServerProcess, free_port

    args = parse_args(argv)
    command = "hatch run dev:bench telemetry-calls " + shlex.join(argv)
    if "off" not in args.targets:
        args.targets.insert(0, "off")
    os.environ.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "10000")
    configure_logging(level="warning", fmt="json")  # as the other benches run their gateways
    work = Path(tempfile.mkdtemp(prefix="lamina-bench-calls-"))
    info = machine()
    port = free_port()
    argv_up = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--impl", "fast"]
    upstream = ServerProcess(
        argv_up, port, log_path=work / "upstream.log", env=_child_env(), ready_path="/v1/models"
    )
    results: dict[str, Counts] = {}
    with CountingReceiver() as receiver, upstream:
        for target in args.targets:
            results[target] = measure(target, upstream.url, receiver, work / target, args.requests)
            print(f"  {target:6} {sum(results[target].values()):,.1f} calls/request", flush=True)
    summary = {"command": command, "when": info["date"], "machine": f"{info['Python']}, git {info['git']}"}
    text = render(args, results, summary)
    print()
    print(text)
    if args.out:
        report.update_doc(args.out, text, section="telemetry-calls")
        print(f"\nwrote {args.out}")
    return 0
