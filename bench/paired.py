"""Paired wrk runs: each target measured right beside a run of a baseline gateway, costs as ratios.

This shared machine's speed moves by 2x within minutes (seen: one gateway at 1,984 then 851 req/s in one
run): a ratio of two runs a few seconds apart survives that, a ratio of medians over a whole run does not.
So every round measures each target right after (or, every other round, right before) a run of the
baseline, and a target's cost is the median over rounds of (its throughput lost, its extra gateway CPU per
request) against the baseline run beside it. Used by ``bench auth`` and ``bench gc-tuning``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.cpu import CpuMeter
from bench.wrk import run_wrk


@dataclass
class PairedRuns:
    baseline: str
    rps: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)  # the gateway's CPU µs per request
    p50_ms: dict[str, list[float]] = field(default_factory=dict)
    # per pair: (throughput lost, extra CPU per request) against the baseline run beside it
    costs: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def median(self, column: str, target: str) -> float:
        return statistics.median(getattr(self, column)[target])

    def cost(self, target: str) -> tuple[float, float]:
        """The medians of the pairs' (throughput cost, CPU per request cost)."""
        pairs = self.costs[target]
        return statistics.median(c[0] for c in pairs), statistics.median(c[1] for c in pairs)


def run_pairs(
    servers: Mapping[str, Any],
    targets: list[str],
    baseline: str,
    body: dict[str, Any],
    path: str,
    *,
    repeat: int,
    duration: float,
    warmup: float,
    connections: int,
    client_cpu: str | None,
    headers: Callable[[str], dict[str, str] | None] = lambda _target: None,
    work: Any = None,
) -> PairedRuns:
    """wrk against ``servers[t].url + path`` for every target, each paired with a baseline run."""
    runs = PairedRuns(baseline)
    everything = [baseline, *(t for t in targets if t != baseline)]
    for target in everything:
        runs.rps[target], runs.cpu_us[target], runs.p50_ms[target] = [], [], []
    for target in everything[1:]:
        runs.costs[target] = []

    def measure(target: str, round_no: int) -> None:
        url = servers[target].url + path
        wrk = {"connections": connections, "cpus": client_cpu, "headers": headers(target)}
        if warmup > 0 and not runs.rps[target]:
            run_wrk(url, body, duration=warmup, **wrk)
        with CpuMeter({"gateway": servers[target].proc.pid}) as meter:
            result = run_wrk(url, body, duration=duration, **wrk)
        if result.errors:
            raise SystemExit(f"{target}: {result.errors} errors; see {work}")
        assert meter.usage is not None
        runs.rps[target].append(result.rps)
        runs.p50_ms[target].append(result.p50_ms)
        runs.cpu_us[target].append(1e6 * meter.usage.ours.get("gateway", 0) / max(result.requests, 1))
        print(
            f"  [{round_no + 1}/{repeat}] {target:8} {result.rps:8,.0f} req/s  "
            f"p50 {result.p50_ms:6.2f} ms  gateway CPU {runs.cpu_us[target][-1]:6.0f} µs/req",
            flush=True,
        )

    for round_no in range(repeat):
        for target in everything[1:]:
            for name in [baseline, target] if round_no % 2 == 0 else [target, baseline]:
                measure(name, round_no)
            runs.costs[target].append(
                (
                    1 - runs.rps[target][-1] / runs.rps[baseline][-1],
                    runs.cpu_us[target][-1] / runs.cpu_us[baseline][-1] - 1,
                )
            )
    return runs


def pct(value: float) -> str:
    return f"{value * 100:+.1f}%"
