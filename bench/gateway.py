"""Gateway overhead: the same load direct to a fake upstream and through Lamina (issue 2).

``python -m bench gateway`` starts, each as its own process:

- the bench upstream (``bench.upstream``: a bare asyncio HTTP server with canned answers),
- a bare aiohttp reverse proxy in front of it (``bench.proxy``: the floor for an aiohttp gateway),
- ``lamina run`` in front of it, quiet (``LAMINA_LOG_LEVEL=warning``: no per-request access log),
- optionally (``--targets ... lamina-log``) ``lamina run`` with default logging (info: one JSON
  access-log line per request, to a file),

then runs wrk against each (non-streaming and streaming OpenAI chat completions, and Lamina's
native chat-completion route, at concurrency 1 and 16), and measures streamed-chunk transit time
with a Python client (``bench.stream``). Every cell is measured ``--repeat`` times (rounds
interleave the targets) and the median is reported. With ``--pin`` (the default on 2+ cores) the
gateway under test gets CPU 1 to itself; the upstream, wrk and the stream client share CPU 0.
The defaults take about three minutes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import report, stream
from bench.cpu import CpuMeter, CpuUsage
from bench.wrk import WrkResult, run_wrk, wrk_binary

REPO = Path(__file__).resolve().parent.parent
MODEL = "ok"
OPENAI_PATH = "/v1/chat/completions"
NATIVE_PATH = "/v1/inference/chat-completion"
MESSAGES = [{"role": "user", "content": "Say hello."}]

# name -> label
TARGETS = {
    "direct": "direct to upstream",
    "proxy": "bare aiohttp proxy",
    "lamina": "Lamina (quiet)",
    "lamina-log": "Lamina (default logging)",
}
DEFAULT_TARGETS = ["direct", "proxy", "lamina"]
LAMINA_TARGETS = ("lamina", "lamina-log")

# name -> (label, path, body, targets)
SCENARIOS: dict[str, tuple[str, str, dict[str, Any], tuple[str, ...]]] = {
    "openai": (
        "OpenAI chat, non-streaming",
        OPENAI_PATH,
        {"model": MODEL, "messages": MESSAGES},
        tuple(TARGETS),
    ),
    "openai-stream": (
        "OpenAI chat, streaming (8 chunks, no delay)",
        OPENAI_PATH,
        {"model": MODEL, "messages": MESSAGES, "stream": True, "bench_chunks": 8},
        tuple(TARGETS),
    ),
    "native": (
        "native chat-completion, non-streaming",
        NATIVE_PATH,
        {"model_id": MODEL, "messages": MESSAGES},
        LAMINA_TARGETS,
    ),
}

TARGET_RATIO = 0.25  # Lamina req/s at c=16 over the direct upstream's
TARGET_ADDED_P50_MS = 1.0  # at c=1
TARGET_CHUNK_MS = 2.0  # upstream send -> client receive, streamed chunk


@dataclass
class Cell:
    """One (scenario, concurrency, target) wrk measurement, repeated."""

    scenario: str
    connections: int
    target: str
    runs: list[WrkResult] = field(default_factory=list)
    cpu: list[CpuUsage] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    @property
    def rps(self) -> float:
        return self.median("rps")

    def cpu_pct(self, name: str) -> float:
        return statistics.median(u.pct(name) for u in self.cpu)

    def cpu_us_per_request(self, name: str) -> float:
        """CPU time of one of our processes per completed request, in microseconds (median)."""
        return statistics.median(
            1e6 * u.ours.get(name, 0.0) / r.requests for u, r in zip(self.cpu, self.runs, strict=True)
        )

    @property
    def foreign_pct(self) -> float:
        return max(u.foreign_pct for u in self.cpu)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


@dataclass
class StreamCell:
    """Streamed-chunk transit for one (target, streams at once), repeated."""

    target: str
    concurrency: int
    results: list[stream.StreamResult] = field(default_factory=list)
    cpu: list[CpuUsage] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """The median over runs of each run's percentile (q=100: the worst chunk of all runs)."""
        values = [r.percentile(q) for r in self.results]
        return max(values) if q >= 100 else statistics.median(values)

    @property
    def first_chunk_p50(self) -> float:
        """Median over runs of the median first chunk of a stream (it also carries the response start)."""
        return statistics.median(stream.percentile(r.first_ms, 50) for r in self.results)

    @property
    def chunks(self) -> int:
        return sum(len(r.latencies_ms) for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.results)

    @property
    def first_error(self) -> str | None:
        return next((r.first_error for r in self.results if r.first_error), None)

    def cpu_pct(self, name: str) -> float:
        return statistics.median(u.pct(name) for u in self.cpu)

    @property
    def foreign_pct(self) -> float:
        return max(u.foreign_pct for u in self.cpu)


# -- processes -----------------------------------------------------------------------------------


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def _pinned(argv: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus is not None else argv


def start_upstream(work: Path, cpus: str | None, impl: str = "fast") -> Any:
    """The bench upstream (``bench.upstream``: canned OpenAI answers) on ``cpus``, started and ready."""
    from lamina.testing.processes import ServerProcess, free_port

    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--impl", impl]
    return ServerProcess(
        _pinned(argv, cpus), port, log_path=work / "upstream.log", env=_child_env(), ready_path="/v1/models"
    ).start()


def start_gateway(
    config: dict[str, Any], work: Path, name: str, cpus: str | None, env: dict[str, str] | None = None
) -> Any:
    """``lamina run`` on ``config`` (in ``work/name``, logging as ``env`` says: json at warning by
    default, as in production) on ``cpus``, started and ready."""
    from lamina.testing.processes import lamina_server

    log_env = {"LAMINA_LOG_LEVEL": "warning", "LAMINA_LOG_FORMAT": "json", **(env or {})}
    server = lamina_server(config, work / name, env=_child_env(log_env), name=name)
    server.argv = _pinned(server.argv, cpus)  # `python -m lamina.cli run <config>`
    return server.start()


def lamina_run_config(upstream_url: str) -> dict[str, Any]:
    """A run config serving model ``ok`` through remote::vllm (an OpenAI-compatible upstream)."""
    return {
        "version": 2,
        "image_name": "bench",
        "providers": {
            "inference": [
                {
                    "provider_id": "upstream",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{upstream_url}/v1"},
                }
            ]
        },
        "models": [{"model_id": MODEL, "provider_id": "upstream", "provider_model_id": MODEL}],
    }


def start_servers(
    work: Path, upstream_impl: str, targets: list[str], gateway_cpu: str | None, client_cpu: str | None
) -> dict[str, Any]:
    """Start the upstream and every gateway in ``targets``; each is ready when this returns."""
    from lamina.testing.processes import ServerProcess, free_port

    servers: dict[str, Any] = {}
    try:
        servers["upstream"] = start_upstream(work, client_cpu, upstream_impl)
        upstream_url = servers["upstream"].url
        if "proxy" in targets:
            port = free_port()
            argv = [sys.executable, "-m", "bench.proxy", "--port", str(port), "--upstream", upstream_url]
            servers["proxy"] = ServerProcess(
                _pinned(argv, gateway_cpu), port, log_path=work / "proxy.log", env=_child_env()
            ).start()
        for name, level in (("lamina", "warning"), ("lamina-log", "info")):
            if name in targets:  # info logs every request
                config = lamina_run_config(upstream_url)
                servers[name] = start_gateway(config, work, name, gateway_cpu, {"LAMINA_LOG_LEVEL": level})
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def _server(servers: dict[str, Any], target: str) -> Any:
    return servers["upstream" if target == "direct" else target]


def _ours(servers: dict[str, Any], target: str) -> dict[str, int]:
    ours = {"upstream": servers["upstream"].proc.pid}
    if target != "direct":
        ours["gateway"] = servers[target].proc.pid
    return ours


def stop_servers(servers: dict[str, Any]) -> None:
    for server in reversed(list(servers.values())):
        try:
            server.stop()
        except Exception as exc:  # keep stopping the others
            print(f"warning: could not stop {server.argv[:4]}: {exc}", file=sys.stderr)


# -- measurements --------------------------------------------------------------------------------


def _foreign(meter: CpuMeter) -> str:
    """Who else used the CPU, when it matters (more than 10% of a core)."""
    assert meter.usage is not None
    return f" ({meter.describe_foreign()})" if meter.usage.foreign_pct > 10 else ""


def measure_wrk(
    servers: dict[str, Any],
    targets: list[str],
    args: argparse.Namespace,
    client_cpu: str | None,
    repeat: int,
    cells: dict[tuple[str, int, str], Cell],
) -> None:
    """One round: every (scenario, concurrency, target) once; warm up each target on the first round."""
    for scenario in args.scenarios:
        _label, path, body, allowed = SCENARIOS[scenario]
        for conns in args.concurrency:
            for target in targets:
                if target not in allowed:
                    continue
                url = _server(servers, target).url + path
                if repeat == 0 and args.warmup > 0 and conns == args.concurrency[0]:
                    warm = max(args.concurrency)  # opens every connection the cell will use
                    run_wrk(url, body, connections=warm, duration=args.warmup, cpus=client_cpu)
                with CpuMeter(_ours(servers, target)) as meter:
                    result = run_wrk(url, body, connections=conns, duration=args.duration, cpus=client_cpu)
                assert meter.usage is not None
                cell = cells.setdefault((scenario, conns, target), Cell(scenario, conns, target))
                cell.runs.append(result)
                cell.cpu.append(meter.usage)
                print(
                    f"  [{repeat + 1}/{args.repeat}] {scenario:13} c={conns:<3} {target:10} "
                    f"{result.rps:9,.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}  "
                    f"gateway cpu {meter.usage.pct('gateway'):3.0f}%"
                    f"  other cpu {meter.usage.foreign_pct:3.0f}%{_foreign(meter)}",
                    flush=True,
                )


def measure_streams(
    servers: dict[str, Any],
    targets: list[str],
    args: argparse.Namespace,
    client_cpu: str | None,
    repeat: int,
    cells: dict[tuple[str, int], StreamCell],
) -> None:
    """One round of streamed-chunk transit measurements; the client runs in this process."""
    previous = os.sched_getaffinity(0)
    if client_cpu is not None:
        os.sched_setaffinity(0, {int(c) for c in client_cpu.split(",")})
    try:
        for conc in args.stream_concurrency:
            for target in targets:
                streams = max(args.streams, conc * 2)
                with CpuMeter(_ours(servers, target)) as meter:
                    result = stream.run(
                        _server(servers, target).url + OPENAI_PATH,
                        MODEL,
                        streams=streams,
                        chunks=args.chunks,
                        interval_ms=args.chunk_interval_ms,
                        concurrency=conc,
                    )
                assert meter.usage is not None
                cell = cells.setdefault((target, conc), StreamCell(target, conc))
                cell.results.append(result)
                cell.cpu.append(meter.usage)
                print(
                    f"  [{repeat + 1}/{args.repeat}] stream c={conc:<3} {target:10} "
                    f"{len(result.latencies_ms):5} chunks  p50 {result.percentile(50):6.3f} ms  "
                    f"p99 {result.percentile(99):6.3f} ms  max {result.percentile(100):6.3f} ms  "
                    f"failed {result.failed}  other cpu {meter.usage.foreign_pct:3.0f}%{_foreign(meter)}",
                    flush=True,
                )
                if result.first_error:
                    print(f"    first error: {result.first_error}", flush=True)
    finally:
        os.sched_setaffinity(0, previous)


# -- the command ---------------------------------------------------------------------------------


@dataclass
class BenchSetup:
    """What a wrk bench decides before it starts servers: pinning, its work dir, the machine, the load."""

    pinned: bool
    gateway_cpu: str | None  # the CPU the gateway under test gets (pinned), else None
    client_cpu: str | None  # the CPU for wrk, the upstream and the rest
    work: Path
    info: dict[str, str]
    load_before: str


def bench_setup(pin: bool | None, work_dir: Path | None, prefix: str) -> BenchSetup:
    """Pin (by default on 2+ cores: the gateway CPU 1, everything else CPU 0), make the work dir, read the
    machine and the load, and print them."""
    from bench.gateway_report import machine

    pinned = pin if pin is not None else len(os.sched_getaffinity(0)) >= 2
    gateway_cpu, client_cpu = ("1", "0") if pinned else (None, None)
    work = work_dir or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    load_before = loadavg()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    print(f"load average before: {load_before}; logs in {work}; pinned: {pinned}", flush=True)
    return BenchSetup(pinned, gateway_cpu, client_cpu, work, info, load_before)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench gateway",
        description=__doc__.split("\n\n")[0],
        epilog="Writes docs/benchmarks.md only with --out. Example: hatch run bench gateway "
        "--out docs/benchmarks.md",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of unrecorded wrk per target and scenario before the first round (default 1)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument(
        "--targets",
        nargs="+",
        default=list(DEFAULT_TARGETS),
        choices=list(TARGETS),
        help="default: direct proxy lamina; add lamina-log for Lamina with its default (info) logging",
    )
    parser.add_argument(
        "--upstream",
        choices=["fast", "aiohttp"],
        default="fast",
        help="fast: bare asyncio upstream (default); aiohttp: the same as an aiohttp app",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pin the gateway to CPU 1 and everything else to CPU 0 (default: on 2+ cores)",
    )
    parser.add_argument("--streams", type=int, default=20, help="streams per chunk-latency run (default 20)")
    parser.add_argument("--stream-concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream (default 20)")
    parser.add_argument(
        "--chunk-interval-ms", type=float, default=5.0, help="upstream pause between chunks (default 5)"
    )
    parser.add_argument("--no-streams", action="store_true", help="skip the chunk-latency measurement")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="update the generated section of this markdown file (docs/benchmarks.md)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="logs and state (default: a temp dir)")
    args = parser.parse_args(argv)
    args.targets = ["direct", *(t for t in TARGETS if t in args.targets and t != "direct")]
    return args


def main(argv: list[str]) -> int:
    from bench import gateway_report as gr

    args = parse_args(argv)
    command = "hatch run bench gateway " + shlex.join(argv) if argv else "hatch run bench gateway"
    wrk_binary()
    setup = bench_setup(args.pin, args.work_dir, "lamina-bench-")
    pinned, gateway_cpu, client_cpu = setup.pinned, setup.gateway_cpu, setup.client_cpu
    work, info, load_before = setup.work, setup.info, setup.load_before
    started = time.monotonic()
    cells: dict[tuple[str, int, str], Cell] = {}
    stream_cells: dict[tuple[str, int], StreamCell] = {}
    servers = start_servers(work, args.upstream, args.targets, gateway_cpu, client_cpu)
    try:
        time.sleep(0.5)
        for repeat in range(args.repeat):
            measure_wrk(servers, args.targets, args, client_cpu, repeat, cells)
            if not args.no_streams:
                measure_streams(servers, args.targets, args, client_cpu, repeat, stream_cells)
    finally:
        stop_servers(servers)
    run = gr.RunInfo(
        command=command,
        machine=info,
        pinned=pinned,
        load_before=load_before,
        load_after=loadavg(),
        seconds=time.monotonic() - started,
    )
    wrk_cells, streams = list(cells.values()), list(stream_cells.values())
    print()
    print(gr.console_summary(args, run, wrk_cells, streams))
    disturbed = [c for c in wrk_cells if c.foreign_pct > 10] + [s for s in streams if s.foreign_pct > 10]
    if disturbed:
        print(
            f"\nwarning: {len(disturbed)} cell(s) had a run with more than 10% of a core used by other "
            f"processes; those numbers are disturbed",
            file=sys.stderr,
        )
    if args.out:
        report.update_doc(args.out, gr.render(args, run, wrk_cells, streams))
        print(f"\nwrote {args.out}")
    return 0
