"""Batch agent runs through a real ``lamina run``, driven by llama-stack-client 0.2.12: agents, datasets and
files through the client's own methods, the batch-agents routes (which the client lacks) through its
``post``/``get``.

The model is the fake upstream (``lamina.testing.fake_openai``) behind remote::vllm: its ``tools1`` model
calls the first offered tool once, then answers (a real model cannot be made to call a tool on demand).
The tool is real: an MCP server on loopback (plugins/mcp/tests/mcp_test_server.py) whose ``add`` runs;
the shield is the rules provider's ``pii``. A row holding ``[[gate]]`` waits at the fake's gate while the
test holds it closed (rows in flight on demand); ``GET /_fake/requests`` counts the model calls, so the
kill -9 test proves a resumed run did not run a finished row again.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess, fake_openai_server, free_port, until

pytestmark = pytest.mark.e2e

MCP_TESTS = Path(__file__).resolve().parents[2] / "plugins" / "mcp" / "tests"
BATCH = "/v1/batch-agents/jobs"
MODEL = "fake/tools1"


def run_config(fake: ServerProcess, mcp: ServerProcess, state: Path) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    return {
        "version": 2,
        "image_name": "batch-agents-e2e",
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "max_retries": 0},  # one 500 fails its row
                }
            ],
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(state / "files"), "metadata_store": sqlite("files.db")},
                }
            ],
            "datasetio": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"kvstore": sqlite("datasets.db")},
                }
            ],
            "tool_runtime": [
                {"provider_id": "mcp", "provider_type": "remote::model-context-protocol", "config": {}}
            ],
            "safety": [{"provider_id": "rules", "provider_type": "inline::rules", "config": {}}],
            "agents": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {"persistence_store": sqlite("agents.db")},
                }
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "models": [
            {"model_id": MODEL, "provider_id": "fake", "provider_model_id": "tools1"},
            {"model_id": "fake/ok", "provider_id": "fake", "provider_model_id": "ok"},
        ],
        "shields": [{"shield_id": "pii", "provider_id": "rules"}],
        "tool_groups": [
            {"toolgroup_id": "mcp::t", "provider_id": "mcp", "mcp_endpoint": {"uri": f"{mcp.url}/mcp"}}
        ],
        "jobs": {"progress_interval": 0.1, "poll_seconds": 0.2, "lease_seconds": 2},
    }


@pytest.fixture(scope="module")
def mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MCP_TESTS), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "mcp_test_server", "--port", str(port), "--transport", "streamable_http"]
    log = tmp_path_factory.mktemp("mcp") / "mcp.log"
    with ServerProcess(argv, port, log_path=log, env=env, ready_path="/health") as server:
        yield server


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fake upstream of this test's own: its gate and request counts are this test's."""
    with fake_openai_server(tmp_path) as server:
        yield server


@pytest.fixture
def start(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, mcp: ServerProcess, tmp_path: Path
) -> Callable[[], tuple[ServerProcess, LlamaStackClient]]:
    def go() -> tuple[ServerProcess, LlamaStackClient]:
        server = start_lamina(run_config(fake, mcp, tmp_path / "state"))
        return server, LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)

    return go


def agent(c: LlamaStackClient) -> str:
    config = {
        "model": MODEL,
        "instructions": "Use the tools.",
        "toolgroups": ["mcp::t"],
        "input_shields": ["pii"],
    }
    return c.agents.create(agent_config=config).agent_id  # type: ignore[arg-type]


def create_run(c: LlamaStackClient, **body: Any) -> dict[str, Any]:
    return c.post(BATCH, body=body, cast_to=object)  # type: ignore[return-value]


def run_of(c: LlamaStackClient, job_id: str) -> dict[str, Any]:
    return c.get(f"{BATCH}/{job_id}", cast_to=object)  # type: ignore[return-value]


def ended(c: LlamaStackClient, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        run = run_of(c, job_id)
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    return until(check, f"batch agent run {job_id} to end", timeout)


def results(c: LlamaStackClient, dataset_id: str) -> list[dict[str, Any]]:
    rows = c.datasets.iterrows(dataset_id, limit=1000).data
    # the client reads every number of a row as a float: the row index back to an int
    return sorted(
        ({**row, "row_index": int(row["row_index"])} for row in rows), key=lambda row: row["row_index"]
    )


def gate(fake: ServerProcess, open_: bool | None = None) -> dict[str, Any]:
    if open_ is None:
        return httpx.get(f"{fake.url}/_fake/gate").json()
    return httpx.post(f"{fake.url}/_fake/gate", json={"open": open_}).json()


def model_calls(fake: ServerProcess) -> int:
    return httpx.get(f"{fake.url}/_fake/requests").json().get("tools1", 0)


def test_a_100_row_run_over_a_dataset_produces_a_results_dataset(
    start: Callable[[], tuple[ServerProcess, LlamaStackClient]], fake: ServerProcess
) -> None:
    server, c = start()
    boom = f"boom-{uuid.uuid4().hex[:8]}"
    httpx.post(f"{fake.url}/_fake/script", json={"tag": boom, "answers": [{"status": 500}]})
    rows: list[dict[str, Any]] = [{"question": f"what is one plus one? ({i})"} for i in range(100)]
    rows[37] = {"question": f"[[script:{boom}]] this one meets an upstream error"}
    rows[71] = {"question": "mail me at bob@example.com"}  # the pii shield stops it before the model
    rows[90] = {"messages": [{"role": "user", "content": "a row with its own messages"}]}
    c.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id="questions"
    )
    agent_id = agent(c)
    run = create_run(c, agent_id=agent_id, dataset_id="questions", input_column="question", max_concurrency=8)
    assert run["status"] in ("scheduled", "in_progress") and run["row_counts"]["total"] == 100
    done = ended(c, run["id"])
    assert done["status"] == "completed", done
    assert done["row_counts"] == {"total": 100, "completed": 98, "failed": 2}
    out = results(c, done["results_dataset_id"])
    assert [row["row_index"] for row in out] == list(range(100))
    fine = [row for row in out if row["row_index"] not in (37, 71)]
    assert all(row["status"] == "completed" and row["error"] is None for row in fine)
    assert all(
        [s["step_type"] for s in row["steps"]] == ["shield_call", "inference", "tool_execution", "inference"]
        for row in fine
    )
    for row in fine:
        [call] = row["tool_calls"]
        assert (call["tool_name"], call["arguments"], call["error"]) == ("add", {"a": 1, "b": 1}, None)
        assert call["result"] and row["output"] and row["session_id"] and row["turn_id"]
    assert out[0]["input"] == [{"role": "user", "content": "what is one plus one? (0)"}]
    assert out[90]["input"] == [{"role": "user", "content": "a row with its own messages"}]
    upstream = out[37]
    assert upstream["status"] == "failed" and upstream["error"]["status_code"] >= 500
    assert "scripted HTTP 500" in upstream["error"]["message"] and upstream["turn_id"]
    shielded = out[71]
    assert shielded["status"] == "failed" and shielded["error"]["type"] == "ShieldViolation"
    assert shielded["output"] == shielded["error"]["message"] and shielded["tool_calls"] == []
    # each row's session and turn are the agent's, readable through the Agents API
    turn = c.agents.turn.retrieve(out[5]["turn_id"], agent_id=agent_id, session_id=out[5]["session_id"])
    assert turn.output_message.content == out[5]["output"]
    # 98 rows of two model calls (the tool call, the answer), the failed one's single call, none for pii
    assert model_calls(fake) == 98 * 2 + 1
    listed = c.get(BATCH, cast_to=object)
    assert [r["id"] for r in listed["data"]] == [run["id"]]  # type: ignore[index]
    job = httpx.get(f"{server.url}/v1/jobs/{run['id']}").json()
    assert (job["kind"], job["status"], job["progress"]) == (
        "agents.batch",
        "completed",
        {"done": 100, "total": 100},
    )


def test_a_tool_that_fails_is_recorded_in_each_row_and_the_run_completes(
    start: Callable[[], tuple[ServerProcess, LlamaStackClient]],
) -> None:
    """The MCP server's ``fail`` tool raises: the turn goes on (the model hears the error and answers), and
    the row is recorded failed with the tool call's error."""
    _, c = start()
    config = {
        "model": "fake/ok",  # calls the tool its tool_choice names, then answers
        "instructions": "Use the tools.",
        "toolgroups": ["mcp::t"],
        "tool_config": {"tool_choice": "fail"},
    }
    lines = "".join(json.dumps({"input": f"try {i}"}) + "\n" for i in range(3))
    file_id = c.files.create(file=("rows.jsonl", lines.encode()), purpose="batch").id  # type: ignore[arg-type]
    run = create_run(c, agent_config=config, input_file_id=file_id)
    done = ended(c, run["id"])
    assert (done["status"], done["row_counts"]) == ("completed", {"total": 3, "completed": 0, "failed": 3})
    for row in results(c, run["results_dataset_id"]):
        [call] = row["tool_calls"]
        assert call["tool_name"] == "fail" and call["error"], call
        assert row["status"] == "failed" and row["error"]["type"] == "ToolError" and row["output"]
        assert [s["step_type"] for s in row["steps"]] == ["inference", "tool_execution", "inference"]


def test_cancel_mid_run_ends_cancelled_with_the_finished_rows(
    start: Callable[[], tuple[ServerProcess, LlamaStackClient]], fake: ServerProcess
) -> None:
    server, c = start()
    gate(fake, False)
    lines = [{"input": f"row {i}" + (" [[gate]]" if i >= 5 else "")} for i in range(30)]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    file_id = c.files.create(file=("rows.jsonl", text.encode()), purpose="batch").id  # type: ignore[arg-type]
    config = {"model": MODEL, "instructions": "Use the tools.", "toolgroups": ["mcp::t"]}
    run = create_run(c, agent_config=config, input_file_id=file_id, max_concurrency=2)
    until(lambda: gate(fake)["waiting"] == 2, "two rows held at the gate")
    until(lambda: run_of(c, run["id"])["row_counts"]["completed"] == 5, "five rows finished")
    cancelled = c.post(f"{BATCH}/{run['id']}/cancel", cast_to=object)
    gate(fake, True)
    assert cancelled["status"] == "cancelled"  # type: ignore[index]
    assert cancelled["row_counts"] == {"total": 30, "completed": 5, "failed": 0}  # type: ignore[index]
    out = results(c, run["results_dataset_id"])
    assert [row["row_index"] for row in out] == list(range(5))
    assert all(row["status"] == "completed" and row["tool_calls"][0]["tool_name"] == "add" for row in out)
    time.sleep(0.5)  # the held rows' answers came back to no one: nothing more is appended
    assert len(results(c, run["results_dataset_id"])) == 5
    assert run_of(c, run["id"])["status"] == "cancelled"
    assert httpx.get(f"{server.url}/v1/jobs/{run['id']}").json()["status"] == "cancelled"


def test_a_run_killed_mid_way_resumes_without_running_finished_rows_again(
    start: Callable[[], tuple[ServerProcess, LlamaStackClient]], fake: ServerProcess
) -> None:
    server, c = start()
    gate(fake, False)
    rows = [{"input": f"row {i}" + (" [[gate]]" if i >= 10 else "")} for i in range(40)]
    c.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id="rows"
    )
    run = create_run(c, agent_id=agent(c), dataset_id="rows", max_concurrency=4)
    until(lambda: gate(fake)["waiting"] == 4, "four rows held at the gate")
    until(lambda: run_of(c, run["id"])["row_counts"]["completed"] == 10, "ten rows finished")
    server.kill()
    server.start()
    gate(fake, True)  # the held calls' server is gone: their answers reach no one
    done = ended(c, run["id"])
    assert done["status"] == "completed", done
    assert done["row_counts"] == {"total": 40, "completed": 40, "failed": 0}
    out = results(c, run["results_dataset_id"])
    assert [row["row_index"] for row in out] == list(range(40))  # each row once
    # two calls per row, plus the four calls the kill cut off (their rows ran again, whole): a finished
    # row run again would add two more
    assert model_calls(fake) == 40 * 2 + 4
    job = httpx.get(f"{server.url}/v1/jobs/{run['id']}").json()
    assert (job["status"], job["attempts"]) == ("completed", 2)
