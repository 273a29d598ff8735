"""``bench agents`` and what it stands on: the fake upstream's ``tools<N>`` model, the engine's
``agent_run_timing`` line (waits on tools are not the engine's own time), and the benchmark itself.

Real processes on 127.0.0.1: the fake OpenAI upstream, the MCP test server (the mcp package's
MCPServer) and ``lamina run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from bench import agents as bench_agents
from lamina.testing.processes import ServerProcess, free_port, lamina_server

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ADD = {
    "name": "add",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
}
ECHO = {
    "name": "echo",
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string"}, "repeat": {"type": "integer"}},
        "required": ["text"],
    },
}


def _ask(fake: ServerProcess, messages: list[dict]) -> dict:
    body = {
        "model": "tools3",
        "messages": messages,
        "tools": [{"type": "function", "function": ADD}, {"type": "function", "function": ECHO}],
    }
    resp = httpx.post(f"{fake.url}/v1/chat/completions", json=body, timeout=10)
    resp.raise_for_status()
    return resp.json()["choices"][0]


def test_the_tools3_model_calls_the_offered_tools_in_turn_three_times_then_answers(
    fake_upstream: ServerProcess,
) -> None:
    messages: list[dict] = [{"role": "user", "content": "old question"}, {"role": "tool", "content": "x"}]
    messages.append({"role": "user", "content": "go"})  # tool results before it do not count
    calls = []
    for _ in range(3):
        choice = _ask(fake_upstream, messages)
        assert choice["finish_reason"] == "tool_calls", choice
        call = choice["message"]["tool_calls"][0]
        calls.append((call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])))
        messages += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "r"}]
    assert calls == [
        ("call_fake1", "add", {"a": 1, "b": 1}),
        ("call_fake2", "echo", {"text": "Paris"}),
        ("call_fake3", "add", {"a": 1, "b": 1}),
    ]
    last = _ask(fake_upstream, messages)
    assert last["finish_reason"] == "stop" and last["message"]["content"]
    assert not last["message"].get("tool_calls")


def _mcp_server(work: Path) -> ServerProcess:
    port = free_port()
    path = os.pathsep.join([str(bench_agents.MCP_TESTS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    argv = [sys.executable, "-m", "mcp_test_server", "--port", str(port), "--transport", "streamable_http"]
    return ServerProcess(argv, port, log_path=work / "mcp.log", env=env, ready_path="/health")


@pytest.fixture
def agents_server(
    fake_upstream: ServerProcess, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with _mcp_server(tmp_path) as mcp:
        config = bench_agents.run_config(fake_upstream.url, mcp.url + "/mcp")
        with lamina_server(config, tmp_path, env={"LAMINA_LOG_LEVEL": "debug"}) as lamina:
            yield lamina, mcp


def test_a_turn_logs_its_timing_and_the_tools_wait_is_not_the_engines_time(
    agents_server: tuple[ServerProcess, ServerProcess],
) -> None:
    """The MCP server's ``sleep`` tool (seconds: 1, from the fake's typed arguments) three times:
    3 s of tool waits, which must land in tool_us, not in the engine's or the facade's own time."""
    lamina, _ = agents_server
    client = LlamaStackClient(base_url=lamina.url, max_retries=0, timeout=60)
    agent_id = client.agents.create(
        agent_config={"model": bench_agents.MODEL, "instructions": "i", "toolgroups": ["mcp::bench/sleep"]}
    ).agent_id
    session_id = client.agents.session.create(agent_id, session_name="s").session_id
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[{"role": "user", "content": "go"}], stream=False
    )
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution"] * 3 + ["inference"]
    [line] = bench_agents.TimingLog(lamina.log_path).take(1).lines
    assert line["steps"] == 7
    assert line["tool_us"] >= 3_000_000  # three 1 s sleeps
    assert line["model_us"] > 0 and line["store_us"] > 0
    assert 0 < line["engine_us"] < 500_000 and 0 < line["facade_us"] < 500_000


def test_the_benchmark_runs_and_reports_every_phase(tmp_path: Path) -> None:
    """``python -m bench agents`` as a user runs it, with small numbers (a smoke test, not a measurement)."""
    out = tmp_path / "benchmarks.md"
    argv = [sys.executable, "-m", "bench", "agents", "--turns", "3", "--warmup", "1", "--concurrency", "5"]
    argv += ["--responses", "--out", str(out), "--work-dir", str(tmp_path / "work")]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    assert "## Agents (issue 13)" in text and "<!-- bench:agents:end -->" in text
    rows = (
        "sequential (Agents, c=1) | 3 | 0 |",
        "5 at once (Agents) | 5 | 0 |",
        "sequential (Responses, mcp tool) | 3 | 0 |",
    )
    for row in rows:  # runs logged, errors
        assert row in text, text
