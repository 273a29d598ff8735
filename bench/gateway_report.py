"""Tables, target verdicts and the docs/benchmarks.md section for ``bench gateway``."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.gateway import (
    LAMINA_TARGETS,
    REPO,
    SCENARIOS,
    TARGET_ADDED_P50_MS,
    TARGET_CHUNK_MS,
    TARGET_RATIO,
    TARGETS,
    Cell,
    StreamCell,
)
from bench.wrk import wrk_binary


@dataclass
class RunInfo:
    command: str
    machine: dict[str, str]
    pinned: bool
    load_before: str
    load_after: str
    seconds: float


def machine() -> dict[str, str]:
    import aiohttp

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    try:
        commit = (
            subprocess.run(
                ["git", "describe", "--always", "--dirty"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "CPU": f"{model} (nproc {len(os.sched_getaffinity(0))})",
        "kernel": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()} (asyncio default loop)",
        "aiohttp": aiohttp.__version__,
        "wrk": wrk_version.split(" Copyright")[0].strip(),
        "git": commit,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- tables --------------------------------------------------------------------------------------


def _find(cells: list[Cell], scenario: str, conns: int, target: str) -> Cell | None:
    key = (scenario, conns, target)
    return next((c for c in cells if (c.scenario, c.connections, c.target) == key), None)


def _base(cells: list[Cell], cell: Cell) -> Cell | None:
    base = _find(cells, cell.scenario, cell.connections, "direct")
    if base is None:  # native route: compare with the direct OpenAI call it turns into
        base = _find(cells, "openai", cell.connections, "direct")
    return base


WRK_HEADERS = [
    "scenario",
    "c",
    "target",
    "req/s",
    "vs direct",
    "p50 ms",
    "p99 ms",
    "added p50",
    "added p99",
    "gateway CPU",
    "gateway CPU/req",
    "upstream CPU",
    "other CPU",
    "errors",
]
WRK_ALIGN = "lrl" + "r" * 11


def wrk_rows(cells: list[Cell]) -> list[list[str]]:
    rows = []
    for cell in cells:
        base = _base(cells, cell)
        direct = cell.target == "direct"
        compare = not direct and base is not None
        p50, p99 = cell.median("p50_ms"), cell.median("p99_ms")
        rows.append(
            [
                cell.scenario,
                str(cell.connections),
                TARGETS[cell.target],
                report.fmt_num(cell.rps),
                report.fmt_pct(100 * cell.rps / base.rps) if compare else "-",
                report.fmt_ms(p50),
                report.fmt_ms(p99),
                report.fmt_ms(p50 - base.median("p50_ms"), True) if compare else "-",
                report.fmt_ms(p99 - base.median("p99_ms"), True) if compare else "-",
                "-" if direct else report.fmt_pct(cell.cpu_pct("gateway")),
                "-" if direct else f"{cell.cpu_us_per_request('gateway'):.0f} µs",
                report.fmt_pct(cell.cpu_pct("upstream")),
                report.fmt_pct(cell.foreign_pct),
                str(cell.errors),
            ]
        )
    return rows


STREAM_HEADERS = [
    "streams at once",
    "target",
    "chunks",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "first chunk p50",
    "added p50",
    "added p99",
    "gateway CPU",
    "failed",
    "other CPU",
]
STREAM_ALIGN = "rl" + "r" * 11


def stream_rows(cells: list[StreamCell]) -> list[list[str]]:
    rows = []
    for cell in cells:
        base = next((c for c in cells if c.target == "direct" and c.concurrency == cell.concurrency), None)
        direct = cell.target == "direct" or base is None
        rows.append(
            [
                str(cell.concurrency),
                TARGETS[cell.target],
                str(cell.chunks),
                report.fmt_ms(cell.percentile(50)),
                report.fmt_ms(cell.percentile(90)),
                report.fmt_ms(cell.percentile(99)),
                report.fmt_ms(cell.percentile(100)),
                report.fmt_ms(cell.first_chunk_p50),
                "-" if direct else report.fmt_ms(cell.percentile(50) - base.percentile(50), True),
                "-" if direct else report.fmt_ms(cell.percentile(99) - base.percentile(99), True),
                "-" if cell.target == "direct" else report.fmt_pct(cell.cpu_pct("gateway")),
                str(cell.failed),
                report.fmt_pct(cell.foreign_pct),
            ]
        )
    return rows


def verdicts(cells: list[Cell], streams: list[StreamCell]) -> list[list[str]]:
    """[target, Lamina config, measured, bare aiohttp proxy, verdict] for the issue's three targets."""
    out = []

    def ratio(name: str) -> tuple[float, str] | None:
        lam, base = _find(cells, "openai", 16, name), _find(cells, "openai", 16, "direct")
        if not (lam and base):
            return None
        return lam.rps / base.rps, f"{lam.rps / base.rps:.1%} ({lam.rps:,.0f} vs {base.rps:,.0f} req/s)"

    def added(name: str) -> tuple[float, str] | None:
        lam, base = _find(cells, "openai", 1, name), _find(cells, "openai", 1, "direct")
        if not (lam and base):
            return None
        value = lam.median("p50_ms") - base.median("p50_ms")
        return value, f"{value:+.3f} ms"

    def chunk(name: str) -> tuple[float, str] | None:
        st = next((s for s in streams if s.target == name and s.concurrency == 1), None)
        if st is None or not st.chunks:
            return None
        p99 = st.percentile(99) if not st.failed else float("inf")
        return p99, f"p50 {st.percentile(50):.3f} / p99 {st.percentile(99):.3f} ms"

    checks = [
        (f"c=16 non-streaming req/s >= {TARGET_RATIO:.0%} of direct", ratio, lambda v: v >= TARGET_RATIO),
        (f"c=1 added p50 <= {TARGET_ADDED_P50_MS:g} ms", added, lambda v: v <= TARGET_ADDED_P50_MS),
        (
            f"streamed chunk upstream -> client <= {TARGET_CHUNK_MS:g} ms (1 stream, p99)",
            chunk,
            lambda v: v <= TARGET_CHUNK_MS,
        ),
    ]
    for label, measure, ok in checks:
        floor = measure("proxy")
        for name in LAMINA_TARGETS:
            got = measure(name)
            if got is None:
                continue
            out.append(
                [
                    label,
                    TARGETS[name],
                    got[1],
                    floor[1] if floor else "-",
                    "met" if ok(got[0]) else "missed",
                ]
            )
    return out


VERDICT_HEADERS = ["target", "Lamina", "measured", "bare aiohttp proxy", "verdict"]


# -- output --------------------------------------------------------------------------------------


def console_summary(
    args: argparse.Namespace, run: RunInfo, cells: list[Cell], streams: list[StreamCell]
) -> str:
    parts = [report.console_table(WRK_HEADERS, wrk_rows(cells), WRK_ALIGN)]
    if streams:
        parts += ["", report.console_table(STREAM_HEADERS, stream_rows(streams), STREAM_ALIGN)]
    parts.append("")
    for target, config, measured, floor, verdict in verdicts(cells, streams):
        parts.append(f"{verdict.upper():7} {target} [{config}]: {measured}   (bare aiohttp proxy: {floor})")
    parts.append(
        f"\nload average before {run.load_before}, after {run.load_after}; took {run.seconds:.0f} s; "
        f"medians of {args.repeat} run(s)"
    )
    return "\n".join(parts)


def render(args: argparse.Namespace, run: RunInfo, cells: list[Cell], streams: list[StreamCell]) -> str:
    info = run.machine
    parts = ["## Gateway overhead (issue 2)", ""]
    parts.append(f"Command: `{run.command}` (took {run.seconds:.0f} s)")
    parts.append("")
    parts.append("Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".")
    parts.append("")
    parts.append(
        f"Load average (1/5/15 min) before the run {run.load_before}, after it {run.load_after} "
        f"(the benchmark itself keeps about two cores busy)."
    )
    parts.append("")
    upstream = (
        "the bench upstream (`bench/upstream.py`, a bare asyncio HTTP/1.1 server with canned answers)"
        if args.upstream == "fast"
        else "the bench upstream as an ordinary aiohttp application (`bench/upstream.py --impl aiohttp`)"
    )
    pin = (
        "Pinned with `taskset`: the gateway under test on CPU 1, the upstream, wrk and the stream client "
        "on CPU 0 (so the direct runs get one core, the gateway runs two)."
        if run.pinned
        else "Not pinned: the kernel schedules every process on every core."
    )
    scenarios = "; ".join(f"`{name}`: {SCENARIOS[name][0]}" for name in args.scenarios)
    parts.append(
        f"Setup: the upstream is {upstream}. Lamina is `lamina run` with `remote::vllm` pointing at it. "
        f"wrk, 1 thread, keep-alive connections, {args.duration:g} s per run after a {args.warmup:g} s "
        f"warm-up, {args.repeat} rounds that interleave the targets, median per cell; latencies are wrk's "
        f'(request sent to response complete). "added" is the gateway\'s percentile minus the direct '
        f"run's at the same concurrency (a difference of percentiles, not a percentile of differences); the "
        f"native route is compared with the direct OpenAI call it is translated into. Scenarios: "
        f"{scenarios}. CPU columns are percent of one core over the run, from /proc; "
        f'"gateway CPU/req" is the gateway\'s CPU time per completed request, which other load on the '
        f'machine disturbs much less than req/s or latency; "other CPU" is the most that every other '
        f"process on the machine used meanwhile in any run of the cell (a run with much of it is "
        f"disturbed). {pin}"
    )
    parts.append("")
    parts += [
        "### Throughput and latency (wrk)",
        "",
        report.markdown_table(WRK_HEADERS, wrk_rows(cells), WRK_ALIGN),
        "",
    ]
    if streams:
        parts += [
            "### Streamed chunk transit (upstream send -> client receive)",
            "",
            f"Each stream has {args.chunks} content chunks sent {args.chunk_interval_ms:g} ms apart, "
            f"{args.streams} streams per run (at least 2 per concurrent stream). The upstream stamps each "
            f"chunk with `time.time_ns()` just before writing it to its socket; the client (aiohttp, "
            f"reading lines as they arrive) subtracts that from its own `time.time_ns()` on receipt. "
            f"Percentiles are the median over rounds of each round's percentile; max is the worst "
            f'chunk of all rounds; "first chunk" is each stream\'s first chunk only, which through a gateway '
            f"also carries the start of the response. The direct row is the client's and loopback's own "
            f"share.",
            "",
            report.markdown_table(STREAM_HEADERS, stream_rows(streams), STREAM_ALIGN),
            "",
        ]
    parts += [
        "### Targets",
        "",
        report.markdown_table(VERDICT_HEADERS, verdicts(cells, streams), "lllll"),
    ]
    return "\n".join(parts)
