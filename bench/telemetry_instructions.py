"""Telemetry's cost in instructions: the gateway's instructions per request, off vs on, under callgrind.

``python -m bench telemetry-instructions`` runs each gateway (``lamina run``) under
``valgrind --tool=callgrind``: after a warm-up, the counters are zeroed (``callgrind_control -z``), wrk
drives the gateway at c=16 for ``--duration`` seconds, and the counters are dumped (``-d``); the
instructions executed by the gateway's process (all its threads; not the export worker, a child process
callgrind does not follow) divided by the requests wrk completed is the figure.

Why a second measure beside ``bench telemetry``'s CPU time: on this shared 2-core machine (two
hyperthreads, as far as a guest can tell) CPU time per request moves by 50-80% with what the other
thread runs, even pinned; instruction counts do not (the same total twice, with the other core loaded or
not). They are not cycles: cache misses and branch mispredictions are not in them. So this is the
repeatable proxy to compare changes by, and ``bench telemetry`` the real throughput on a quiet machine.
Each gateway takes ~1.5 minutes to start under callgrind; the targets run two at a time.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import report
from bench.gateway import MESSAGES, MODEL, OPENAI_PATH, _child_env, lamina_run_config
from bench.telemetry import PARTS, TARGET_COST, CountingReceiver, telemetry_run_config
from bench.wrk import run_wrk, wrk_binary

TARGETS = {
    "off": "telemetry off",
    "on": "telemetry on: otel_trace + otel_metric + sqlite, prometheus: true (lean tracer)",
    "sdk": "telemetry on, the same sinks, tracer: sdk (OpenTelemetry's SDK spans)",
    **{part: f"telemetry on, {PARTS[part][0]}" for part in ("none", "otlp", "sqlite")},
}


def _config(target: str, upstream: str, receiver: CountingReceiver, work: Path) -> dict[str, Any]:
    if target == "off":
        return lamina_run_config(upstream)
    if target in ("on", "sdk"):
        config = telemetry_run_config(upstream, receiver, work)
        config["providers"]["telemetry"][0]["config"]["tracer"] = "sdk" if target == "sdk" else "lean"
        return config
    _label, sinks, prometheus = PARTS[target]
    return telemetry_run_config(upstream, receiver, work, sinks, prometheus)


def measure(target: str, upstream: str, receiver: CountingReceiver, work: Path, duration: float) -> dict:
    from lamina.testing.processes import lamina_server

    out = work / "callgrind.out"
    env = {"LAMINA_LOG_LEVEL": "warning", "LAMINA_LOG_FORMAT": "json"}
    server = lamina_server(_config(target, upstream, receiver, work), work, env=env, name=target)
    server.argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *server.argv]
    server.ready_timeout = 900
    started = time.monotonic()
    server.start()
    startup = time.monotonic() - started
    url = server.url + OPENAI_PATH
    body = {"model": MODEL, "messages": MESSAGES}
    try:
        run_wrk(url, body, connections=16, duration=5, timeout_s=60)  # warm-up: caches, first-use imports
        _control("-z", server.pid)  # zero the counters
        result = run_wrk(url, body, connections=16, duration=duration, timeout_s=60)
        _control("-d", server.pid)  # dump them
        loaded = _last_dump(work)
        # The same time idle: what the gateway does by the clock (timers, the export thread's wake-ups),
        # which production spreads over ~50x more requests a second; subtracted.
        _control("-z", server.pid)
        time.sleep(duration)
        _control("-d", server.pid)
        idle = _last_dump(work)
    finally:
        server.stop(timeout=120)
    per = (loaded - idle) / max(result.requests, 1)
    print(
        f"  {target:6} started in {startup:4.0f} s; {result.requests} requests, {result.errors} errors; "
        f"{per:,.0f} instructions/request (idle {idle / duration:,.0f}/s subtracted)",
        flush=True,
    )
    return {"requests": result.requests, "errors": result.errors, "instructions": loaded - idle}


def _control(flag: str, pid: int | None) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


def _last_dump(work: Path) -> int:
    """The instructions of the newest callgrind dump (``callgrind.out.N``) in ``work``."""
    dumps = sorted(work.glob("callgrind.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    text = dumps[-1].read_text()
    return sum(int(n) for n in re.findall(r"^totals:\s+(\d+)", text, re.M))


def render(args: argparse.Namespace, results: dict[str, dict], info: dict[str, str]) -> str:
    off = results["off"]["instructions"] / max(results["off"]["requests"], 1)
    rows = []
    for target, r in results.items():
        per = r["instructions"] / max(r["requests"], 1)
        cost = per / off - 1 if target != "off" else None
        verdict = ("met" if cost <= TARGET_COST else "missed") if cost is not None and target == "on" else ""
        rows.append(
            [
                TARGETS[target],
                report.fmt_num(r["requests"]),
                report.fmt_num(per),
                report.fmt_num(per - off, 0) if cost is not None else "",
                f"{cost:+.1%}" if cost is not None else "",
                verdict,
                str(r["errors"]),
            ]
        )
    table = report.markdown_table(
        [
            "gateway (c=16, OpenAI chat, non-streaming)",
            "requests counted",
            "instructions/request",
            "added",
            "cost",
            f"target <= {TARGET_COST:.0%}",
            "errors",
        ],
        rows,
        "lrrrrrr",
    )
    return (
        "### Telemetry cost in instructions per request\n\n"
        f"`{info['command']}`: {info['when']}; {info['machine']}; valgrind callgrind, "
        f"{args.duration:g} s of wrk per gateway after a 5 s warm-up; instructions of the gateway's process "
        "(every thread; the export worker, a child process, is not counted), less those of as long idle "
        f"right after.\n\n{table}\n"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench telemetry-instructions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of wrk per gateway (default 20)"
    )
    parser.add_argument(
        "--targets", nargs="+", default=["off", "on"], choices=list(TARGETS), help="default: off on"
    )
    parser.add_argument("--out", type=Path, default=None, help="update this section of this file")
    parser.add_argument("--work-dir", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    from bench.gateway_report import machine
    from lamina.testing.processes import ServerProcess, free_port

    args = parse_args(argv)
    command = "hatch run dev:bench telemetry-instructions " + shlex.join(argv)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: apt-get install valgrind", file=sys.stderr)
            return 2
    wrk_binary()
    if "off" not in args.targets:
        args.targets.insert(0, "off")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="lamina-bench-instructions-"))
    info = machine()
    port = free_port()
    argv_up = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--impl", "fast"]
    upstream = ServerProcess(
        argv_up, port, log_path=work / "upstream.log", env=_child_env(), ready_path="/v1/models"
    )
    results: dict[str, dict] = {}
    with CountingReceiver() as receiver, upstream:
        with ThreadPoolExecutor(2) as pool:
            futures = {
                t: pool.submit(measure, t, upstream.url, receiver, work / t, args.duration)
                for t in args.targets
            }
            for target in args.targets:
                results[target] = futures[target].result()
    summary = {"command": command, "when": info["date"], "machine": f"{info['Python']}, git {info['git']}"}
    text = render(args, results, summary)
    print()
    print(text)
    if args.out:
        report.update_doc(args.out, text, section="telemetry-instructions")
        print(f"\nwrote {args.out}")
    return 0
