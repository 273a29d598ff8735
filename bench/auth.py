"""The cost of authentication and access control: gateway throughput with auth off, a JWT checked against
a JWKS, a Lamina API key, and a JWT with ``server.quota`` counting every request (issue 18's target: auth +
access control cost at most 10% at c=16). With ``server.auth`` every request also goes through access
control (Lamina's default policy): the chat route checks read on its model (unowned: cached) and records
the caller as the stored completion's owner.

``python -m bench auth`` starts the bench upstream (canned OpenAI answers), a real identity provider
(lamina.testing.auth_servers: JWKS on loopback) and four ``lamina run`` processes: no auth ("off"),
``oauth2_token`` with the JWKS ("jwt", RS256 2048-bit), ``api_keys`` ("apikey"), the JWT with a request
quota in a SQLite kvstore ("quota" in the SQLite kvstore, the quota's additions coalesced). wrk at
concurrency 16 runs in pairs: each round measures every target right after (or, every other round,
right before) a run of "off", and the costs are the medians of those pairs' ratios, throughput and the
gateway's CPU time per request (from /proc). Pairs, because this shared machine's speed moves by 2x
within minutes (seen: "off" at 1,984 then 851 req/s in one run): a ratio of two runs a few seconds apart
survives that, a ratio of medians over the whole run does not. The target counts as met when either cost
is within 10%. With ``--pin`` (the default on 2+ cores) the gateways have CPU 1, everything else CPU 0.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import httpx

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
    "off": "auth off",
    "jwt": "oauth2_token, JWT RS256 against a JWKS",
    "apikey": "a Lamina API key (sqlite metadata store; an accepted key reused 5 s)",
    "quota": "JWT and server.quota (SQLite kvstore: a count a request, concurrent ones coalesced)",
}
BOOTSTRAP = "bench-bootstrap-admin-key-0123456789"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench auth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of wrk per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (each pairs every target with off)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--out", type=Path, help="write the result into this file (docs/benchmarks.md)")
    parser.add_argument("--work-dir", type=Path)
    return parser.parse_args(argv)


def start(work: Path, idp: Any, gateway_cpu: str | None, client_cpu: str | None) -> dict[str, Any]:
    from lamina.testing.auth_servers import AUDIENCE, ISSUER

    servers: dict[str, Any] = {}
    try:
        servers["upstream"] = start_upstream(work, client_cpu)
        base = lamina_run_config(servers["upstream"].url)
        jwks = {"uri": f"{idp.url}/jwks"}
        auths = {
            "off": None,
            "jwt": {
                "provider_type": "oauth2_token",
                "config": {"jwks": jwks, "issuer": ISSUER, "audience": AUDIENCE},
            },
            "apikey": {"provider_type": "api_keys", "config": {"bootstrap_admin_key": BOOTSTRAP}},
        }
        auths["quota"] = auths["jwt"]
        quota = {
            "kvstore": {"type": "sqlite", "db_path": str(work / "quota.db")},
            "authenticated_max_requests": 10**12,  # counted, never reached
            "period": "day",
        }
        for name, auth in auths.items():
            config = {**base, "server": {"auth": auth}} if auth else base
            if name == "quota":
                config = {**base, "server": {"auth": auth, "quota": quota}}
            servers[name] = start_gateway(config, work, name, gateway_cpu)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def main(argv: list[str]) -> int:
    from lamina.testing.auth_servers import IdentityProvider

    args = parse_args(argv)
    command = "hatch run dev:bench auth " + shlex.join(argv) if argv else "hatch run dev:bench auth"
    wrk_binary()
    setup = bench_setup(args.pin, args.work_dir, "lamina-bench-auth-")
    pinned, gateway_cpu, client_cpu = setup.pinned, setup.gateway_cpu, setup.client_cpu
    work, info, load_before = setup.work, setup.info, setup.load_before
    body = {"model": MODEL, "messages": MESSAGES}
    with IdentityProvider() as idp:
        servers = start(work, idp, gateway_cpu, client_cpu)
        try:
            key = httpx.post(
                f"{servers['apikey'].url}/v1/admin/api-keys",
                json={"principal": "bench"},
                headers={"Authorization": f"Bearer {BOOTSTRAP}"},
            ).json()["key"]
            jwt = idp.token(exp=2**31 - 1)
            tokens = {"off": None, "jwt": jwt, "apikey": key, "quota": jwt}
            runs = run_pairs(
                servers, list(TARGETS), "off", body, OPENAI_PATH,
                repeat=args.repeat, duration=args.duration, warmup=args.warmup,
                connections=args.connections, client_cpu=client_cpu, work=work,
                headers=lambda t: {"Authorization": f"Bearer {tokens[t]}"} if tokens[t] else None,
            )  # fmt: skip
        finally:
            stop_servers(servers)
    lines = [
        "Authentication cost, OpenAI chat non-streaming through Lamina to a canned upstream, "
        f"c={args.connections}, {args.repeat} rounds of {args.duration:g} s runs, each target paired with "
        f"a run of auth off beside it; costs are the medians of the pairs' ratios, the other columns "
        f"medians of every run. Command: `{command}`. "
        f"{info['date']}; {info['CPU']}, {info['Python']}, git {info['git']}; pinned {pinned}; "
        f"load {load_before} / {loadavg()}.",
        "",
        "| auth | req/s | throughput cost | CPU/req cost | target <= 10% | p50 ms | gateway CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target, label in TARGETS.items():
        cells = ["", "", ""]
        if target != "off":
            tput, cpu = runs.cost(target)
            met = "met" if min(tput, cpu) <= 0.10 else "missed"
            cells = [pct(tput), pct(cpu), met if target != "quota" else "(not in it)"]
        lines.append(
            f"| {label} | {runs.median('rps', target):,.0f} | {' | '.join(cells)} | "
            f"{runs.median('p50_ms', target):.2f} | {runs.median('cpu_us', target):.0f} |"
        )
    text = "\n".join(lines)
    print()
    print(text)
    if args.out:
        report.update_doc(args.out, text, section="auth")
        print(f"\nwrote {args.out}")
    return 0
