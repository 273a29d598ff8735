"""Batch agent runs in process: a Stack built from a run config (the fake upstream behind remote::vllm,
localfs files and datasets, the agents provider, SQLite job store) served on a loopback port, driven over
HTTP. Checks the 4xx a client gets for a run that cannot work, a small run to the end, and how a finished
turn becomes a results row (``turn_result``: a tool that failed, a shield violation).

The end-to-end tests with llama-stack-client, a real ``lamina run``, a real MCP tool server, cancel and
kill -9 are tests/e2e/test_batch_agents.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lamina.apis.agents import ShieldCallStep, ToolExecutionStep, ToolResponse, Turn
from lamina.apis.inference import CompletionMessage, ToolCall, UserMessage
from lamina.apis.safety import SafetyViolation
from lamina.config import parse_run_config
from lamina.jobs import WorkApis, work_function
from lamina.plugins import PluginManager
from lamina.server.app import create_app
from lamina.specs import Api
from lamina.stack import Stack
from lamina.testing.processes import ServerProcess, fake_openai_server
from lamina_agents.batch_rows import ROW_WORK, RowError, turn_messages, turn_result

BATCH = "/v1/batch-agents/jobs"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with fake_openai_server(tmp_path_factory.mktemp("batch-agents-upstream")) as server:
        yield server


def run_config(upstream: ServerProcess, state: Path) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    return {
        "version": 2,
        "image_name": "batch-agents-in-process",
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{upstream.url}/v1"},
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
                    "config": {"kvstore": sqlite("ds.db")},
                }
            ],
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
            {"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok"},
            {"model_id": "echo", "provider_id": "fake", "provider_model_id": "echo"},
        ],
        "jobs": {"progress_interval": 0.1, "poll_seconds": 0.2},
    }


@pytest.fixture
async def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: ServerProcess
) -> AsyncIterator[tuple[Stack, aiohttp.ClientSession]]:
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path / "home"))
    pm = PluginManager(
        strict=True, allow=("openai_compat", "localfs", "datasetio-localfs", "agents"), deny=(), trace=False
    ).load_entry_points()
    doc = run_config(upstream, tmp_path / "state")
    stack = Stack.build(parse_run_config(doc, source="run.yaml", env={}), pm)
    runner = web.AppRunner(create_app(stack))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
            yield stack, session
    finally:
        await runner.cleanup()


@pytest.fixture
def http(served: tuple[Stack, aiohttp.ClientSession]) -> aiohttp.ClientSession:
    return served[1]


async def call(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, path, **kw) as response:
        return response.status, await response.json()


async def dataset(http: aiohttp.ClientSession, dataset_id: str, rows: list[dict[str, Any]]) -> None:
    body = {
        "dataset_id": dataset_id,
        "purpose": "eval/messages-answer",
        "source": {"type": "rows", "rows": rows},
    }
    status, doc = await call(http, "POST", "/v1/datasets", json=body)
    assert status == 200, doc


async def agent(http: aiohttp.ClientSession) -> str:
    status, doc = await call(
        http, "POST", "/v1/agents", json={"agent_config": {"model": "ok", "instructions": "be brief"}}
    )
    assert status == 200, doc
    return doc["agent_id"]


def error_of(doc: dict[str, Any]) -> str:
    return json.dumps(doc)


async def test_runs_that_cannot_work_are_refused_naming_the_field(http: aiohttp.ClientSession) -> None:
    agent_id = await agent(http)
    await dataset(http, "questions", [{"question": "hi"}, {"question": "there"}])
    await dataset(http, "blank", [{"input": "fine"}, {"input": "  "}])

    async def refused(body: dict[str, Any]) -> tuple[int, str]:
        status, doc = await call(http, "POST", BATCH, json=body)
        return status, error_of(doc)

    status, text = await refused({"agent_id": "no-such-agent", "dataset_id": "questions"})
    assert status == 404 and "no-such-agent" in text and "agent_id" in text
    status, text = await refused({"dataset_id": "questions"})
    assert status == 400 and "agent_id" in text and "agent_config" in text
    status, text = await refused(
        {"agent_config": {"model": "nope", "instructions": "x"}, "dataset_id": "questions"}
    )
    assert status in (400, 404) and "agent_config.model" in text
    status, text = await refused({"agent_id": agent_id})
    assert status == 400 and "dataset_id" in text and "input_file_id" in text
    status, text = await refused({"agent_id": agent_id, "dataset_id": "missing-ds"})
    assert status == 404 and "missing-ds" in text
    # the rows have no "input" column: the error names the column, the row and what it has instead
    status, text = await refused({"agent_id": agent_id, "dataset_id": "questions"})
    assert status == 400 and "input_column" in text and "'input'" in text and "question" in text
    status, text = await refused({"agent_id": agent_id, "dataset_id": "blank"})
    assert status == 400 and "input_column" in text and "row 1" in text and "empty" in text
    status, text = await refused({"agent_id": agent_id, "input_file_id": "file-nope"})
    assert status == 400 and "input_file_id" in text and "file-nope" in text
    body = {"agent_id": agent_id, "dataset_id": "questions", "input_column": "question"}
    status, text = await refused({**body, "results_dataset_id": "blank"})
    assert status == 409 and "results_dataset_id" in text and "exists already" in text
    status, text = await refused({"agent_id": agent_id, "dataset_id": "questions", "max_concurrency": 0})
    assert status == 400 and "max_concurrency" in text
    status, text = await call(http, "GET", f"{BATCH}/job-unknown")
    assert status == 404 and "job-unknown" in error_of(text)
    listed = await call(http, "GET", BATCH)
    assert listed == (
        200,
        {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False},
    )


async def test_a_small_run_over_a_dataset_ends_with_a_results_row_per_row(
    http: aiohttp.ClientSession,
) -> None:
    rows = [{"question": f"q{i}"} for i in range(5)] + [
        {"messages": [{"role": "user", "content": "from messages"}]}
    ]
    await dataset(http, "qs", rows)
    body = {
        "agent_config": {"model": "ok", "instructions": "be brief"},
        "dataset_id": "qs",
        "input_column": "question",
        "results_dataset_id": "qs-results",
        "metadata": {"team": "a"},
    }
    status, job = await call(http, "POST", BATCH, json=body)
    assert status == 200, job
    assert job["object"] == "batch_agent_job" and job["results_dataset_id"] == "qs-results"
    assert job["row_counts"] == {"total": 6, "completed": 0, "failed": 0} and job["metadata"] == {"team": "a"}
    for _ in range(600):
        status, job = await call(http, "GET", f"{BATCH}/{job['id']}")
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "completed", job
    assert job["row_counts"] == {"total": 6, "completed": 6, "failed": 0}
    status, page = await call(http, "GET", "/v1/datasetio/iterrows/qs-results", params={"limit": 100})
    results = sorted(page["data"], key=lambda r: r["row_index"])
    assert [r["row_index"] for r in results] == list(range(6))
    assert [r["input"] for r in results][:1] == [[{"role": "user", "content": "q0"}]]
    assert results[5]["input"] == [{"role": "user", "content": "from messages"}]
    assert all(r["output"].startswith("tok0@") for r in results)  # the fake's streamed answer
    assert all(r["status"] == "completed" and r["error"] is None for r in results)
    # the sessions and turns are the agent's: readable through the Agents API
    first = results[0]
    status, turn = await call(
        http, "GET", f"/v1/agents/{job['agent_id']}/session/{first['session_id']}/turn/{first['turn_id']}"
    )
    assert status == 200 and turn["output_message"]["content"] == first["output"]
    status, listed = await call(http, "GET", BATCH)
    assert [j["id"] for j in listed["data"]] == [job["id"]]
    status, jobs = await call(http, "GET", "/v1/jobs", params={"kind": "agents.batch"})
    assert jobs["data"][0]["id"] == job["id"] and jobs["data"][0]["progress"] == {"done": 6, "total": 6}
    status, doc = await call(http, "POST", f"{BATCH}/{job['id']}/cancel")
    assert status == 409 and "completed already" in error_of(doc)


async def finished(http: aiohttp.ClientSession, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        _, job = await call(http, "GET", f"{BATCH}/{job_id}")
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {job_id} did not end")


async def test_the_rows_run_with_the_provider_data_the_run_was_created_with(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """X-LlamaStack-Provider-Data (a caller's own upstream key) reaches every row's model call, as it would
    the same turn sent alone; it is kept only while the run goes on, never in the job's params."""
    await dataset(http, "one", [{"input": "hi"}])
    header = {"X-LlamaStack-Provider-Data": json.dumps({"vllm_api_token": "caller-token"})}
    body = {"agent_config": {"model": "echo", "instructions": "x"}, "dataset_id": "one"}
    status, job = await call(http, "POST", BATCH, json=body, headers=header)
    assert status == 200, job
    job = await finished(http, job["id"])
    assert job["status"] == "completed", job
    status, page = await call(http, "GET", f"/v1/datasetio/iterrows/{job['results_dataset_id']}")
    [row] = page["data"]
    assert json.loads(row["output"])["_authorization"] == "Bearer caller-token"
    status, record = await call(http, "GET", f"/v1/jobs/{job['id']}")
    assert "caller-token" not in json.dumps(record)
    with sqlite3.connect(tmp_path / "state" / "agents.db") as db:
        keys = [key for (key,) in db.execute("SELECT key FROM kvstore").fetchall()]
    assert keys and not [key for key in keys if key.startswith("batch_agents:")]  # forgotten at the end


async def test_the_work_function_of_a_row_needs_only_the_agents_api(
    served: tuple[Stack, aiohttp.ClientSession],
) -> None:
    """What lets an executor run rows in a worker: ``run_row`` reaches the stack through ``apis[Api.agents]``
    alone (any other API would raise KeyError here), takes and returns JSON."""
    stack, http = served
    agent_id = await agent(http)
    only_agents = WorkApis(stack.routers, {Api.agents})
    item = {
        "index": 3,
        "agent_id": agent_id,
        "session_name": "w",
        "messages": [{"role": "user", "content": "hi"}],
    }
    row = await work_function(ROW_WORK)(only_agents, json.loads(json.dumps(item)))
    assert json.loads(json.dumps(row)) == row
    assert (row["row_index"], row["status"], row["error"]) == (3, "completed", None)
    assert row["output"].startswith("tok0@") and row["session_id"] and row["turn_id"]
    # a row whose agent is gone is a failed results row, not an exception
    gone = await work_function(ROW_WORK)(only_agents, {**item, "agent_id": "deleted-agent"})
    assert gone["status"] == "failed" and gone["error"]["status_code"] == 404
    assert "deleted-agent" in gone["error"]["message"]


def test_the_turn_of_a_row_is_its_messages_or_its_input() -> None:
    assert turn_messages({"input": "hi"}, 0, "input", "messages") == [{"role": "user", "content": "hi"}]
    as_text = json.dumps([{"role": "user", "content": "a"}])
    assert turn_messages({"messages": as_text}, 0, "input", "messages") == [{"role": "user", "content": "a"}]
    for row, says in [
        ({"messages": [{"role": "assistant", "content": "x"}]}, "not a list of user or tool messages"),
        ({"messages": "not json"}, "not a JSON list"),
        ({"input": ""}, "is empty"),
        ({"input": 3}, "must be text"),
        ({"other": "x"}, "has no column 'input'"),
        ("just text", "not a JSON object"),
    ]:
        with pytest.raises(RowError, match=says):
            turn_messages(row, 7, "input", "messages")


def _turn(*steps: Any) -> Turn:
    now = datetime.now(UTC)
    return Turn(
        turn_id="t1",
        session_id="s1",
        input_messages=[UserMessage(content="hi")],
        steps=list(steps),
        output_message=CompletionMessage(content="the answer"),
        started_at=now,
        completed_at=now,
    )


def test_a_turn_becomes_a_results_row_with_its_tool_calls_and_first_error() -> None:
    tools = ToolExecutionStep(
        turn_id="t1",
        step_id="st1",
        tool_calls=[
            ToolCall(call_id="c1", tool_name="add", arguments={"a": 1, "b": 1}),
            ToolCall(call_id="c2", tool_name="fail", arguments={}),
        ],
        tool_responses=[
            ToolResponse(call_id="c1", tool_name="add", content="2"),
            ToolResponse(call_id="c2", tool_name="fail", content="error: boom", metadata={"error": "boom"}),
        ],
    )
    row = turn_result(_turn(tools))
    assert row["status"] == "failed" and row["output"] == "the answer" and row["turn_id"] == "t1"
    assert row["tool_calls"] == [
        {"call_id": "c1", "tool_name": "add", "arguments": {"a": 1, "b": 1}, "result": "2", "error": None},
        {"call_id": "c2", "tool_name": "fail", "arguments": {}, "result": "error: boom", "error": "boom"},
    ]
    assert row["error"] == {"type": "ToolError", "message": "fail: boom", "status_code": None}
    assert [s["step_type"] for s in row["steps"]] == ["tool_execution"]

    violation = SafetyViolation(
        violation_level="error", user_message="no PII please", metadata={"rule": "pii"}
    )
    shielded = turn_result(_turn(ShieldCallStep(turn_id="t1", step_id="sh", violation=violation)))
    assert shielded["status"] == "failed" and shielded["error"]["type"] == "ShieldViolation"
    assert shielded["error"]["message"] == "no PII please"
    assert turn_result(_turn(ShieldCallStep(turn_id="t1", step_id="sh")))["status"] == "completed"
