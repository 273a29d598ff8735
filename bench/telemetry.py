"""Telemetry's cost: gateway throughput with telemetry off vs on, same run, interleaved (issue 15).

``python -m bench telemetry`` starts, each as its own process:

- the bench upstream (``bench.upstream``, canned OpenAI answers),
- ``lamina run`` without a telemetry provider ("off"),
- ``lamina run`` with the ``inline::meta-reference`` telemetry provider ("on"): sinks ``otel_trace``,
  ``otel_metric`` (OTLP/HTTP to a receiver in this process) and ``sqlite`` (the trace store), and
  ``prometheus: true`` with a real Prometheus server scraping ``/metrics`` every second (Debian's
  ``prometheus``; without the binary, a scraper thread in this process does the same),

then runs wrk at concurrency 16 against each, alternating off/on (and which goes first) every round,
and reports the medians: requests/s, the throughput cost, and the gateway's CPU time per request
(from /proc, so the machine's other load does not enter it). Target: at most 10% throughput cost.
With ``--pin`` (the default on 2+ cores) the gateway under test has CPU 1; everything else CPU 0.
With ``--paced MS`` each wrk connection waits MS ms after each answer, so off and on serve about the same
request rate and their CPU per request compares like for like: flat out on two cores, the "on" gateway's
export worker takes CPU from wrk and the upstream, the gateway gets fewer requests per event-loop turn,
and its CPU per request rises for reasons that are not its own work (docs/benchmarks.md, "Telemetry
cost", step 4).

The OTLP receiver only counts what arrives (requests and bytes; decoding would cost CPU 0 the time
it takes, and the cost measured here is the gateway's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import report
from bench.cpu import CpuMeter, CpuUsage
from bench.gateway import (
    MESSAGES,
    MODEL,
    OPENAI_PATH,
    _pinned,
    bench_setup,
    lamina_run_config,
    loadavg,
    start_gateway,
    start_upstream,
    stop_servers,
)
from bench.wrk import WrkResult, run_wrk, wrk_binary

TARGET_COST = 0.10  # throughput lost with telemetry on, at c=16
SCENARIOS = {
    "openai": ("OpenAI chat, non-streaming", {"model": MODEL, "messages": MESSAGES}),
    "openai-stream": (
        "OpenAI chat, streaming (8 chunks)",
        {"model": MODEL, "messages": MESSAGES, "stream": True, "bench_chunks": 8},
    ),
}
# --gc: server.gc of every gateway (None: Lamina's default).
GC_SETTINGS: dict[str, dict[str, Any] | None] = {
    "default": None,
    "cpython": {"freeze": False, "gen0_threshold": 700},
}
TARGETS = {"off": "telemetry off", "on": "telemetry on (OTLP + sqlite + Prometheus)"}
# --parts: the same provider with one sink each, to see where the cost of "on" goes.
PARTS = {
    "none": ("no sink (spans and metrics recorded, nothing exported)", [], False),
    "otlp": ("OTLP only (otel_trace + otel_metric)", ["otel_trace", "otel_metric"], False),
    "sqlite": ("trace store only (sqlite)", ["sqlite"], False),
    "prometheus": ("Prometheus only (/metrics, not scraped)", [], True),
    "sampled10": ("all sinks, sampling_ratio 0.1", None, True),
}


class CountingReceiver:
    """An OTLP/HTTP endpoint on 127.0.0.1 (a thread with its own event loop) that answers 200 and counts."""

    def __init__(self) -> None:
        from lamina.testing.processes import free_port

        self.port = free_port()
        self.requests: dict[str, int] = {"traces": 0, "metrics": 0}
        self.bytes: dict[str, int] = {"traces": 0, "metrics": 0}
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-receiver", daemon=True)

    def endpoint(self, signal: str) -> str:
        return f"http://127.0.0.1:{self.port}/v1/{signal}"

    def _run(self) -> None:
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            signal = request.match_info["signal"]
            body = await request.read()
            self.requests[signal] = self.requests.get(signal, 0) + 1
            self.bytes[signal] = self.bytes.get(signal, 0) + len(body)
            # An empty Export*ServiceResponse is zero bytes of protobuf.
            return web.Response(body=b"", content_type="application/x-protobuf")

        async def serve() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/{signal}", receive)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._runner = runner
            self._started.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    def __enter__(self) -> CountingReceiver:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class Scraper:
    """Prometheus scraping the "on" server every second: the real server when installed, else a thread."""

    def __init__(self, target_port: int, work: Path, cpus: str | None) -> None:
        self.target_port = target_port
        self.work = work
        self.cpus = cpus
        self.process: Any = None
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        return "Prometheus server (1 s scrape interval)" if self.process else "scraper thread (1 s)"

    def start(self) -> Scraper:
        from lamina.testing.processes import ServerProcess, free_port

        binary = shutil.which("prometheus")
        if binary is None:
            self._thread = threading.Thread(target=self._scrape_loop, daemon=True)
            self._thread.start()
            return self
        config = self.work / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            f"- job_name: lamina\n  static_configs: [{{targets: ['127.0.0.1:{self.target_port}']}}]\n"
        )
        port = free_port()
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        self.process = ServerProcess(
            _pinned(argv, self.cpus), port, log_path=self.work / "prometheus.log", ready_path="/-/ready"
        ).start()
        return self

    def _scrape_loop(self) -> None:
        import httpx

        while not self._stop.wait(1.0):
            try:
                httpx.get(f"http://127.0.0.1:{self.target_port}/metrics", timeout=5)
                self.scrapes += 1
            except httpx.HTTPError:
                pass

    def samples_scraped(self) -> str:
        """What Prometheus holds of the gateway (proof the scrapes worked)."""
        if self.process is None:
            return f"{self.scrapes} scrapes"
        import httpx

        query = 'sum(http_server_request_duration_seconds_count{job="lamina"})'
        resp = httpx.get(f"{self.process.url}/api/v1/query", params={"query": query}, timeout=10)
        result = resp.json()["data"]["result"]
        return f"PromQL {query} = {result[0]['value'][1] if result else 'nothing'}"

    def stop(self) -> None:
        self._stop.set()
        if self.process is not None:
            self.process.stop()


@dataclass
class Cell:
    scenario: str
    target: str
    runs: list[WrkResult] = field(default_factory=list)
    cpu: list[CpuUsage] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def cpu_per_run(self) -> list[float]:
        """Gateway CPU time per completed request in each run, microseconds."""
        pairs = zip(self.cpu, self.runs, strict=True)
        return [1e6 * u.ours.get("gateway", 0.0) / max(r.requests, 1) for u, r in pairs]

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.cpu_per_run)

    @property
    def worker_cpu_us(self) -> float:
        """CPU time per request of the gateway's child processes (the telemetry export worker)."""
        pairs = zip(self.cpu, self.runs, strict=True)
        return statistics.median(
            1e6 * sum(v for k, v in u.ours.items() if k.startswith("worker")) / max(r.requests, 1)
            for u, r in pairs
        )

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def foreign_pct(self) -> float:
        return max(u.foreign_pct for u in self.cpu)


def telemetry_run_config(
    upstream_url: str,
    receiver: CountingReceiver,
    work: Path,
    sinks: list[str] | None = None,
    prometheus: bool = True,
    sampling_ratio: float = 1.0,
) -> dict[str, Any]:
    config = lamina_run_config(upstream_url)
    config["providers"]["telemetry"] = [
        {
            "provider_id": "meta-reference",
            "provider_type": "inline::meta-reference",
            "config": {
                "service_name": "lamina-bench",
                "sinks": ["otel_trace", "otel_metric", "sqlite"] if sinks is None else sinks,
                "otel_trace_endpoint": receiver.endpoint("traces"),
                "otel_metric_endpoint": receiver.endpoint("metrics"),
                "sqlite_db_path": str(work / "trace_store.db"),
                "prometheus": prometheus,
                "sampling_ratio": sampling_ratio,
            },
        }
    ]
    return config


def start_servers(
    work: Path,
    receiver: CountingReceiver,
    gateway_cpu: str | None,
    client_cpu: str | None,
    parts: list[str],
    gc: dict[str, Any] | None = None,
):
    servers: dict[str, Any] = {}
    try:
        servers["upstream"] = start_upstream(work, client_cpu)
        url = servers["upstream"].url
        configs = {"off": lamina_run_config(url), "on": telemetry_run_config(url, receiver, work)}
        for part in parts:
            _label, sinks, prometheus = PARTS[part]
            ratio = 0.1 if part == "sampled10" else 1.0
            configs[part] = telemetry_run_config(url, receiver, work / part, sinks, prometheus, ratio)
        for name, config in configs.items():
            if gc is not None:
                config["server"] = {"gc": gc}
            # Metrics exported every 10 s rather than OpenTelemetry's default minute: several exports per run.
            env = {"OTEL_METRIC_EXPORT_INTERVAL": "10000"}
            servers[name] = start_gateway(config, work, name, gateway_cpu, env)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench telemetry", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded wrk seconds per target first")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, off and on each; medians (default 5)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--parts",
        nargs="*",
        default=[],
        choices=list(PARTS),
        help="also measure the provider with one sink each (none, otlp, sqlite, prometheus), or with all "
        "sinks and a tenth of the traces sampled (sampled10)",
    )
    parser.add_argument(
        "--worker-cpu",
        choices=["gateway", "client"],
        default="gateway",
        help="where the OTLP export worker (the gateway's child process) runs when pinned: on the gateway's "
        "CPU (default: it inherits the pinning and competes with the gateway) or on the CPU of everything "
        "else (wrk, the upstream, the receiver, Prometheus), as a collector sidecar would",
    )
    parser.add_argument(
        "--paced",
        type=int,
        default=0,
        metavar="MS",
        help="pace the load: each connection waits MS ms after each answer (about c / (MS + latency) "
        "req/s), so off and on serve the same request rate and their CPU per request compares like for "
        "like (written to its own section, telemetry-paced)",
    )
    parser.add_argument(
        "--gc",
        choices=list(GC_SETTINGS),
        default="default",
        help="server.gc of every gateway: Lamina's default (frozen start-up heap, generation-0 threshold "
        "7,000) or CPython's own settings (no freeze, 700)",
    )
    parser.add_argument("--out", type=Path, default=None, help="update the telemetry section of this file")
    parser.add_argument("--work-dir", type=Path, default=None)
    return parser.parse_args(argv)


def render(args: argparse.Namespace, cells: dict[tuple[str, str], Cell], info: dict[str, str]) -> str:
    rows = []
    for scenario in args.scenarios:
        off = cells[(scenario, "off")]
        for target in ["on", *args.parts]:
            on = cells[(scenario, target)]
            # Paired: each round's on against the same round's off (the load drifts between rounds).
            pairs = zip(off.runs, on.runs, strict=True)
            cost = statistics.median(1 - b.rps / a.rps for a, b in pairs if a.rps)
            cpu_pairs = zip(off.cpu_per_run, on.cpu_per_run, strict=True)
            cpu_cost = statistics.median(b_us / a_us - 1 for a_us, b_us in cpu_pairs if a_us)
            label = SCENARIOS[scenario][0] + ("" if target == "on" else f", {PARTS[target][0]}")
            rows.append(
                [
                    label,
                    report.fmt_num(off.rps),
                    report.fmt_num(on.rps),
                    f"{100 * cost:.1f}%",
                    f"{100 * cpu_cost:+.1f}%",
                    ("met" if (cpu_cost if args.paced else min(cost, cpu_cost)) <= TARGET_COST else "missed")
                    if target == "on"
                    else "",
                    report.fmt_num(off.cpu_us),
                    report.fmt_num(on.cpu_us),
                    f"{on.cpu_us - off.cpu_us:+,.0f}",
                    report.fmt_num(on.worker_cpu_us),
                    str(off.errors + on.errors),
                    report.fmt_pct(max(off.foreign_pct, on.foreign_pct)),
                ]
            )
    headers = [
        f"scenario (c=16, paced: {args.paced} ms between requests)" if args.paced else "scenario (c=16)",
        "off req/s",
        "on req/s",
        "throughput cost",
        "CPU/req cost",
        f"target <= {TARGET_COST:.0%}",
        "off CPU µs/req",
        "on CPU µs/req",
        "added µs/req",
        "export worker CPU µs/req",
        "errors",
        "other CPU (max)",
    ]
    paced = (
        f" Paced: each connection waits {args.paced} ms after each answer, so both gateways serve about the "
        "same request rate below what either can take; the CPU per request then compares like for like "
        "(flat out, a gateway that is not the bottleneck batches less, a syscall per request more, and its "
        "CPU per request rises with no change to its own work), and the target is judged on it."
        if args.paced
        else ""
    )
    lines = [
        "### Telemetry cost at an equal request rate" if args.paced else "## Telemetry cost (issue 15)",
        "",
        f"`{info['command']}`: {info['when']}; {info['machine']}; pinned: {info['pinned']}; "
        f"load before/after {info['load']}; export worker on the {info['worker_cpu']}'s CPU; "
        f"server.gc: {info['gc']}; "
        f"{args.repeat} rounds of {args.duration:g} s per target, off and "
        "on alternating; req/s and µs/req are medians, the two costs the median of each round's on/off "
        "ratio. "
        '"on": sinks otel_trace + otel_metric (OTLP/HTTP to a receiver in the '
        f"bench process) + sqlite (the trace store), Prometheus `/metrics` scraped by a {info['scraper']}. "
        "CPU µs/req is the gateway process's CPU time per completed request (/proc): on a shared machine it "
        "is the steadier measure (throughput also moves with what else runs on the gateway's core). The "
        "export worker (the gateway's child process that encodes and posts spans to OTLP, "
        "lamina_telemetry.export_worker) is counted apart; on the gateway's CPU it competes with the gateway "
        "and its cost shows in the throughput column. The "
        "target counts as met when either cost is within it." + paced,
        "",
        report.markdown_table(headers, rows),
        "",
        f"Exported during the run: {info['exported']}; {info['scraped']}. {info['kept']}",
    ]
    return "\n".join(lines)


def move_children(pid: int, cpu: int) -> None:
    """Every thread of every process ``pid`` started onto ``cpu``. Every thread: a pid's affinity is its
    main thread's only, and the export worker's export and store threads, started with it on the
    gateway's CPU, stayed there (until session 18 they did, which the flat-out tables before its step 8
    measured)."""
    for child in _children(pid):
        for thread in Path(f"/proc/{child}/task").iterdir():
            with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(thread.name), {cpu})


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (the telemetry export worker), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def kept_spans(store: Path, requests: int) -> str:
    """How many of the "on" gateway's requests have their SERVER span in its trace store (after its
    shutdown flushed): spans a full export queue dropped are missing (the export worker runs at a lower
    priority than the gateway and may fall behind on a saturated machine)."""
    import sqlite3

    if not store.exists() or requests <= 0:
        return ""
    with contextlib.closing(sqlite3.connect(store)) as db:
        listed = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%spans'")
        roots = sum(
            db.execute(f"SELECT count(*) FROM {table} WHERE root = 1 AND name LIKE 'POST %'").fetchone()[0]
            for (table,) in listed.fetchall()
        )
    return (
        f"Trace store of the on gateway: {roots:,} request spans for {requests:,} requests answered "
        f"({100 * roots / requests:.1f}%: spans a full export queue dropped are missing)."
    )


def measure_round(
    servers: dict[str, Any],
    args: argparse.Namespace,
    repeat: int,
    client_cpu: str | None,
    cells: dict[tuple[str, str], Cell],
    served: dict[str, int],
) -> None:
    """Every scenario off and on once; who goes first alternates between rounds (drift cancels out).
    ``served`` counts the requests each target answered, warm-ups included."""
    targets = ["off", "on", *args.parts]
    order = targets if repeat % 2 == 0 else targets[::-1]
    for scenario in args.scenarios:
        body = SCENARIOS[scenario][1]
        for target in order:
            url = servers[target].url + OPENAI_PATH
            if repeat == 0 and args.warmup > 0:
                warm = run_wrk(
                    url, body, connections=args.connections, duration=args.warmup, cpus=client_cpu,
                    delay_ms=args.paced,
                )  # fmt: skip
                served[target] = served.get(target, 0) + warm.requests
            pid = servers[target].proc.pid
            ours = {"gateway": pid, **{f"worker{i}": child for i, child in enumerate(_children(pid))}}
            with CpuMeter(ours) as meter:
                result = run_wrk(
                    url, body, connections=args.connections, duration=args.duration, cpus=client_cpu,
                    delay_ms=args.paced,
                )  # fmt: skip
            assert meter.usage is not None
            cell = cells.setdefault((scenario, target), Cell(scenario, target))
            cell.runs.append(result)
            served[target] = served.get(target, 0) + result.requests
            cell.cpu.append(meter.usage)
            cpu_us = 1e6 * meter.usage.ours.get("gateway", 0) / max(result.requests, 1)
            print(
                f"  [{repeat + 1}/{args.repeat}] {scenario:13} {target:3} {result.rps:8,.0f} req/s  "
                f"p50 {result.p50_ms:6.2f} ms  errors {result.errors}  gateway CPU {cpu_us:6.0f} µs/req  "
                f"other CPU {meter.usage.foreign_pct:3.0f}%",
                flush=True,
            )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = "hatch run dev:bench telemetry " + shlex.join(argv) if argv else "hatch run dev:bench telemetry"
    wrk_binary()
    setup = bench_setup(args.pin, args.work_dir, "lamina-bench-telemetry-")
    pinned, gateway_cpu, client_cpu = setup.pinned, setup.gateway_cpu, setup.client_cpu
    work, info, load_before = setup.work, setup.info, setup.load_before
    previous = os.sched_getaffinity(0)
    if client_cpu is not None:  # this process hosts the OTLP receiver: keep it off the gateway's CPU
        os.sched_setaffinity(0, {int(client_cpu)})
    cells: dict[tuple[str, str], Cell] = {}
    served: dict[str, int] = {}
    with CountingReceiver() as receiver:
        servers = start_servers(work, receiver, gateway_cpu, client_cpu, args.parts, GC_SETTINGS[args.gc])
        if args.worker_cpu == "client" and client_cpu is not None:
            time.sleep(1.0)  # the workers start with their telemetry provider
            for name, server in servers.items():
                if name != "upstream":
                    move_children(server.proc.pid, int(client_cpu))
        scraper = Scraper(servers["on"].port, work, client_cpu)
        try:
            scraper.start()
            time.sleep(1.0)
            for repeat in range(args.repeat):
                measure_round(servers, args, repeat, client_cpu, cells, served)
            time.sleep(2.0)  # a last scrape
            scraped = scraper.samples_scraped()
            scraper_kind = scraper.kind
        finally:
            scraper.stop()
            stop_servers(servers)  # the "on" server flushes its spans and metrics to the receiver here
        os.sched_setaffinity(0, previous)
        exported = ", ".join(
            f"{receiver.requests[s]} OTLP {s} requests ({receiver.bytes[s] / 1e6:.1f} MB)"
            for s in ("traces", "metrics")
        )
    summary = {
        "command": command,
        "when": info["date"],
        "machine": f"{info['CPU']}, {info['Python']}, git {info['git']}",
        "pinned": str(pinned),
        "worker_cpu": args.worker_cpu,
        "gc": "Lamina's default" if args.gc == "default" else "CPython's settings (no freeze, threshold 700)",
        "load": f"{load_before} / {loadavg()}",
        "scraper": scraper_kind,
        "exported": exported,
        "scraped": scraped,
        "kept": kept_spans(work / "trace_store.db", served.get("on", 0)),
    }
    text = render(args, cells, summary)
    print()
    print(text)
    if args.out:
        if args.paced:
            report.update_doc(args.out, text, section="telemetry-paced", command="telemetry --paced")
        else:
            report.update_doc(args.out, text, section="telemetry")
        print(f"\nwrote {args.out}")
    return 0
