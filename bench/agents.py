"""Agents: the agent loop's own time per step, whole-server CPU per turn, and 200 concurrent turns.

``python -m bench agents`` (``hatch run bench agents``) starts, each as its own process on 127.0.0.1:

- the fake OpenAI upstream (``lamina.testing.fake_openai``) serving model ``tools3``: while a turn
  has fewer than 3 tool results it calls the offered tools in turn, then answers in 8 text chunks;
- a real MCP server (``plugins/mcp/tests/mcp_test_server.py``: the mcp package's MCPServer over
  streamable HTTP, tools ``add``, ``echo``, ``describe``...);
- ``lamina run`` with ``remote::vllm`` on the fake, ``remote::model-context-protocol`` with the tool
  group ``mcp::bench`` on the MCP server, and ``inline::meta-reference`` agents on SQLite, at log
  level debug so that the engine writes one ``agent_run_timing`` line per run.

A turn (``POST /v1/agents/{agent}/session/{session}/turn``, streamed) makes 4 model calls and 3 MCP
tool calls: 7 steps (4 inference, 3 tool_execution). Each turn has its own new session, so every turn
has the same shape. The turns are sent as raw HTTP by aiohttp in this process (the client's cost is
not the server's; llama-stack-client creates the agent and sessions and runs one turn first, to show
the shape is what that client reads). Measured:

1. the agent loop's own time per step, inside the server (``RunClock``, engine.py): the engine's own
   work, the Agents facade's own work on its events (steps, wire chunks), each excluding the waits on
   the model, the tools and the store; the store's waits are reported apart;
2. whole-server CPU per turn (utime+stime of the ``lamina run`` process from /proc, every thread:
   HTTP in and out, SSE, logging, SQLite), for ``--turns`` sequential turns;
3. ``--concurrency`` turns sent at once on one process: errors, wall time, p50/p99 turn latency, and
   the loop's own time per step meanwhile;
4. with ``--responses``: the same 3-call shape through ``POST /v1/openai/v1/responses`` with an ``mcp``
   tool (non-streamed), sequential: engine own time per step and server CPU per response.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter
from bench.report import console_table, markdown_table, update_doc

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
MCP_TESTS = REPO / "plugins" / "mcp" / "tests"
MODEL = "fake/tools3"
TOOL_CALLS = 3
STEPS = 2 * TOOL_CALLS + 1  # an inference step per model call, a tool_execution step per call
TARGET_STEP_MS = 2.0
TARGET_CONCURRENT = 200


def run_config(upstream_url: str, mcp_url: str) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "bench-agents",
        "apis": ["inference", "tool_runtime", "agents"],
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{upstream_url}/v1"},
                }
            ],
            "tool_runtime": [
                {
                    "provider_id": "model-context-protocol",
                    "provider_type": "remote::model-context-protocol",
                    "config": {},
                }
            ],
            "agents": [
                {"provider_id": "meta-reference", "provider_type": "inline::meta-reference", "config": {}}
            ],
        },
        "models": [{"model_id": MODEL, "provider_id": "fake", "provider_model_id": "tools3"}],
        "tool_groups": [
            {
                "toolgroup_id": "mcp::bench",
                "provider_id": "model-context-protocol",
                "mcp_endpoint": {"uri": mcp_url},
            }
        ],
    }


# -- the timing lines ------------------------------------------------------------------------------


@dataclass
class Runs:
    """The ``agent_run_timing`` lines of one phase: per run, microseconds per step."""

    lines: list[dict[str, Any]] = field(default_factory=list)

    def per_step(self, *names: str) -> list[float]:
        return [sum(line[f"{n}_us"] for n in names) / max(line["steps"], 1) for line in self.lines]

    def stat(self, q: float, *names: str) -> float:
        return _pct(self.per_step(*names), q)


class TimingLog:
    """Reads the server log's ``agent_run_timing`` lines written since the last ``take()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def take(self, expected: int, timeout: float = 10.0) -> Runs:
        runs = Runs()
        deadline = time.monotonic() + timeout
        while True:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]
            for raw in complete.splitlines():
                if b"agent_run_timing" in raw:
                    try:
                        line = json.loads(raw)
                    except ValueError:
                        continue
                    if line.get("event") == "agent_run_timing":
                        runs.lines.append(line)
            self.offset += len(complete)
            if len(runs.lines) >= expected or time.monotonic() > deadline:
                return runs
            time.sleep(0.05)


# -- the client --------------------------------------------------------------------------------------


@dataclass
class TurnResult:
    seconds: float
    error: str | None = None
    steps: int = 0


async def _turn(session: Any, base: str, agent_id: str, session_id: str) -> TurnResult:
    url = f"{base}/v1/agents/{agent_id}/session/{session_id}/turn"
    body = {"messages": [{"role": "user", "content": "Use the tools, then answer."}], "stream": True}
    started = time.perf_counter()
    steps, done, error = 0, False, None
    try:
        async with session.post(url, json=body) as resp:
            if resp.status != 200:
                text = (await resp.text())[:200]
                return TurnResult(time.perf_counter() - started, f"HTTP {resp.status}: {text}")
            async for raw in resp.content:
                if not raw.startswith(b"data: "):
                    continue
                event = json.loads(raw[6:])
                if "error" in event:
                    error = f"error event: {event['error']}"
                    continue
                payload = event["event"]["payload"]
                if payload["event_type"] == "step_complete":
                    steps += 1
                elif payload["event_type"] == "turn_complete":
                    done = True
    except Exception as exc:  # counted, not raised: the concurrency phase reports every failure
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    if error is None and not done:
        error = "the stream ended without turn_complete"
    if error is None and steps != STEPS:
        error = f"{steps} steps, expected {STEPS}"
    return TurnResult(seconds, error, steps)


async def _turns(base: str, agent_id: str, sessions: list[str], concurrent: bool) -> list[TurnResult]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        if concurrent:
            return await asyncio.gather(*(_turn(http, base, agent_id, s) for s in sessions))
        return [await _turn(http, base, agent_id, s) for s in sessions]


async def _responses(base: str, mcp_url: str, n: int) -> list[TurnResult]:
    import aiohttp

    body = {
        "model": MODEL,
        "input": "Use the tools, then answer.",
        "tools": [
            {"type": "mcp", "server_label": "bench", "server_url": mcp_url, "require_approval": "never"}
        ],
    }
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        for _ in range(n):
            started = time.perf_counter()
            async with http.post(f"{base}/v1/openai/v1/responses", json=body) as resp:
                doc = await resp.json()
            calls = [o for o in doc.get("output") or [] if o.get("type") == "mcp_call"]
            ok = resp.status == 200 and len(calls) == TOOL_CALLS
            error = None if ok else f"{resp.status}: {str(doc)[:200]}"
            out.append(TurnResult(time.perf_counter() - started, error, len(calls)))
    return out


def _sessions(client: Any, agent_id: str, n: int) -> list[str]:
    return [client.agents.session.create(agent_id, session_name=f"s{i}").session_id for i in range(n)]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))] if values else float("nan")


# -- the command -----------------------------------------------------------------------------------


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from llama_stack_client import LlamaStackClient

    from lamina.testing.processes import ServerProcess, fake_openai_server, free_port, lamina_server

    upstream = fake_openai_server(work)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MCP_TESTS), os.environ.get("PYTHONPATH", "")])}
    mcp = ServerProcess(
        [sys.executable, "-m", "mcp_test_server", "--port", str(port), "--transport", "streamable_http"],
        port,
        log_path=work / "mcp.log",
        env=env,
        ready_path="/health",
    )
    out: dict[str, Any] = {}
    with upstream, mcp:
        mcp_url = mcp.url + "/mcp"
        config = run_config(upstream.url, mcp_url)
        # debug: the engine's agent_run_timing lines (and one access-log line per request)
        with lamina_server(config, work, env={"LAMINA_LOG_LEVEL": "debug"}, name="lamina") as lamina:
            log = TimingLog(lamina.log_path)
            client = LlamaStackClient(base_url=lamina.url, max_retries=0, timeout=120)
            agent_id = client.agents.create(
                agent_config={
                    "model": MODEL,
                    "instructions": "You are a helpful assistant.",
                    "toolgroups": ["mcp::bench"],
                    "sampling_params": {"max_tokens": 32},
                }
            ).agent_id
            # One turn through llama-stack-client: the shape the official client reads.
            check = client.agents.turn.create(
                agent_id=agent_id,
                session_id=_sessions(client, agent_id, 1)[0],
                messages=[{"role": "user", "content": "Use the tools, then answer."}],
                stream=False,
            )
            kinds = [s.step_type for s in check.steps]
            assert kinds == ["inference", "tool_execution"] * TOOL_CALLS + ["inference"], kinds
            base = lamina.url
            pids = {"lamina": lamina.proc.pid, "upstream": upstream.proc.pid, "mcp": mcp.proc.pid}
            asyncio.run(_turns(base, agent_id, _sessions(client, agent_id, args.warmup), concurrent=False))
            log.take(args.warmup + 1)

            sessions = _sessions(client, agent_id, args.turns)
            with CpuMeter(pids) as meter:
                results = asyncio.run(_turns(base, agent_id, sessions, concurrent=False))
            out["sequential"] = (results, log.take(args.turns), meter.usage)

            sessions = _sessions(client, agent_id, args.concurrency)
            started = time.perf_counter()
            with CpuMeter(pids) as meter:
                results = asyncio.run(_turns(base, agent_id, sessions, concurrent=True))
            wall = time.perf_counter() - started
            out["concurrent"] = (results, log.take(args.concurrency, timeout=30), meter.usage, wall)

            if args.responses:
                asyncio.run(_responses(base, mcp_url, args.warmup))
                log.take(args.warmup)
                with CpuMeter(pids) as meter:
                    results = asyncio.run(_responses(base, mcp_url, args.turns))
                out["responses"] = (results, log.take(args.turns), meter.usage)
    return out


def render(args: argparse.Namespace, out: dict[str, Any], seconds: float) -> tuple[str, str]:
    """(console text, markdown section)."""
    headers = [
        "phase",
        "runs",
        "errors",
        "engine µs/step p50",
        "p99",
        "engine+facade µs/step p50",
        "p99",
        "store wait µs/step p50",
        "server CPU ms/turn",
        "turn ms p50",
        "p99",
    ]
    rows = []
    phases = [
        ("sequential (Agents, c=1)", "sequential"),
        (f"{args.concurrency} at once (Agents)", "concurrent"),
    ]
    if "responses" in out:
        phases.append(("sequential (Responses, mcp tool)", "responses"))
    for label, key in phases:
        results, runs, usage = out[key][:3]
        errors = sum(r.error is not None for r in results)
        rows.append(
            [
                label,
                str(len(runs.lines)),
                str(errors),
                f"{runs.stat(50, 'engine'):.0f}",
                f"{runs.stat(99, 'engine'):.0f}",
                # the Responses facade does not time its own work: engine only there
                f"{runs.stat(50, 'engine', 'facade'):.0f}" if key != "responses" else "-",
                f"{runs.stat(99, 'engine', 'facade'):.0f}" if key != "responses" else "-",
                f"{runs.stat(50, 'store'):.0f}" if key != "responses" else "-",
                f"{1000 * usage.ours.get('lamina', 0.0) / max(len(results), 1):.2f}",
                f"{1000 * _pct([r.seconds for r in results], 50):.1f}",
                f"{1000 * _pct([r.seconds for r in results], 99):.1f}",
            ]
        )
    results, runs, usage, wall = out["concurrent"]
    first_error = next((r.error for r in results if r.error), None)
    p50 = max(runs.stat(50, "engine", "facade"), out["sequential"][1].stat(50, "engine", "facade"))
    worst = max(runs.stat(99, "engine", "facade"), out["sequential"][1].stat(99, "engine", "facade"))
    seq_usage = out["sequential"][2]
    verdicts = [
        f"agent loop's own time per step <= {TARGET_STEP_MS:g} ms (engine+facade, the higher of the two "
        f"Agents phases): p99 {worst / 1000:.3f} ms (p50 {p50 / 1000:.3f} ms): "
        f"{'met' if worst / 1000 <= TARGET_STEP_MS else 'missed'}",
        f">= {TARGET_CONCURRENT} concurrent turns on one process without errors: {len(results)} turns, "
        f"{sum(r.error is not None for r in results)} errors, {wall:.1f} s wall: "
        f"{'met' if len(results) >= TARGET_CONCURRENT and first_error is None else 'missed'}",
    ]
    errors = [f"first error: {first_error}"] if first_error else []
    console = "\n".join([console_table(headers, rows), "", *verdicts, *errors])
    upstream_ms = 1000 * seq_usage.ours.get("upstream", 0.0) / args.turns
    mcp_ms = 1000 * seq_usage.ours.get("mcp", 0.0) / args.turns
    cpu_note = (
        f"During the sequential phase the fake upstream used {upstream_ms:.2f} ms and the MCP server "
        f"{mcp_ms:.2f} ms of CPU per turn; every other process on the machine "
        f"{seq_usage.foreign_pct:.0f}% of a core."
    )
    command = shlex.join(["hatch", "run", "bench", "agents", *args.argv])
    md = "\n".join(
        [
            "## Agents (issue 13)",
            "",
            f"Command: `{command}` (took {seconds:.0f} s). {args.turns} sequential turns after "
            f"{args.warmup} unrecorded ones, then {args.concurrency} turns sent at once; Python "
            f"{sys.version.split()[0]}, {os.cpu_count()} cores shared with other jobs, load average "
            f"{os.getloadavg()[0]:.2f} at the end.",
            "",
            "Setup (`bench/agents.py`): `lamina run` with `remote::vllm` on the fake upstream "
            "(`lamina.testing.fake_openai`, model `tools3`: it calls the offered tools in turn until the "
            "turn has 3 tool results, then answers in 8 chunks), `remote::model-context-protocol` with tool "
            "group `mcp::bench` on a real MCP server (`plugins/mcp/tests/mcp_test_server.py`, streamable "
            "HTTP), `inline::meta-reference` agents on SQLite; all on 127.0.0.1. A turn is 4 model calls and "
            f"3 MCP tool calls: {STEPS} steps, each turn in a new session. Turns are streamed `POST "
            "/v1/agents/{agent}/session/{session}/turn` sent by aiohttp (raw HTTP; llama-stack-client "
            "0.2.12 ran one turn first and read its 7 steps).",
            "",
            "Engine and facade times are measured inside the server by `RunClock` "
            "(`plugins/agents/src/lamina_agents/engine.py`) and logged per run at debug level "
            "(`agent_run_timing`): *engine* is the loop's own work between being asked for an event and "
            "handing it over, less its waits on the model (router call and every streamed chunk), the tools "
            "and the shields; *facade* is the Agents facade's own work on those events (steps, stream "
            "chunks), less its waits on the store. Persistence (the turn written after every step) is the "
            "*store wait*, reported apart. Per step = the run's total over its steps; percentiles over runs. "
            "The Responses facade does not time its own work, so its row has the engine's alone. "
            "*Server CPU* is the whole `lamina run` process (every thread: HTTP in and out, SSE encoding, "
            "debug logging, SQLite) from /proc, divided by the turns. Turn latency is the client's, request "
            "sent to stream end. " + cpu_note,
            "",
            markdown_table(headers, rows),
            "",
            *(f"- {v}" for v in verdicts),
        ]
    )
    return console, md


def main(argv: list[str]) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # llama-stack-client's one line per request
    parser = argparse.ArgumentParser(prog="python -m bench agents", description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=100, help="sequential turns measured (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="unrecorded turns first (default 10)")
    parser.add_argument("--concurrency", type=int, default=TARGET_CONCURRENT, help="turns sent at once (200)")
    parser.add_argument("--responses", action="store_true", help="also the Responses API with an mcp tool")
    parser.add_argument("--out", type=Path, default=None, help="update this markdown file's agents section")
    parser.add_argument("--work-dir", type=Path, default=None, help="logs and state (default: a temp dir)")
    args = parser.parse_args(argv)
    args.argv = argv
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lamina-bench-agents-") as tmp:
        work = args.work_dir or Path(tmp)
        out = measure(args, work)
    console, md = render(args, out, time.monotonic() - started)
    print(console)
    if args.out:
        update_doc(args.out, md, section="agents")
        print(f"\nwrote {args.out}")
    failed = any(r.error for key in out for r in out[key][0])
    return 1 if failed else 0
