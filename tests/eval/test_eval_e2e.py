"""Benchmarks and the Eval API through a real ``lamina run``, driven by llama-stack-client 0.2.12.

Providers: inline::localfs (datasetio), inline::basic (scoring), inline::meta-reference (agents and
eval), and the fake OpenAI upstream (``lamina.testing.fake_openai``) behind ``remote::vllm`` as the
candidate model: its ``guard`` model answers the ``[[guard:<answer>]]`` directive it finds in the
messages, so each row scripts the candidate's answer; ``slow`` answers after a delay (a run long
enough to watch, cancel and kill); ``error500`` fails. The fake counts the requests each model got
(``GET /_fake/requests``): the kill -9 test proves a resumed eval does not answer finished rows again.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.postgres import PostgresServer
from lamina.testing.processes import ServerProcess, fake_openai_server
from lamina.testing.processes import until as _until


def until(check: Any, what: str, timeout: float = 120.0) -> Any:
    """An eval job on a loaded machine may take a while: two minutes by default."""
    return _until(check, what, timeout, interval=0.1)


pytestmark = pytest.mark.e2e

# Llama Stack's tests/integration/datasets/test_dataset.csv, with the answer each row scripts.
QA = [
    ("What is the capital of France?", "Paris", "Paris"),
    ("Who is the CEO of Meta?", "Mark Zuckerberg", "Mark Zuckerberg"),
    ("What is the largest planet in our solar system?", "Saturn", "Jupiter"),
    ("What is the smallest country in the world?", "Vatican City", "Vatican City"),
    ("What is the highest mountain?", "K2", "Everest"),
]
SAMPLING = {"strategy": {"type": "greedy"}, "max_tokens": 16}


def qa_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["input_query", "generated_answer", "expected_answer", "chat_completion_input"])
    for question, scripted, expected in QA:
        messages = [{"role": "user", "content": f"{question} [[guard:{scripted}]]"}]
        writer.writerow([question, "stale", expected, json.dumps(messages)])
    return "data:text/csv;base64," + base64.b64encode(out.getvalue().encode()).decode()


def run_config(fake: ServerProcess, state: Path, *, jobs: dict | None = None, **eval_config: Any) -> dict:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    return {
        "version": 2,
        "image_name": "eval-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "scoring": [{"provider_id": "basic", "provider_type": "inline::basic", "config": {}}],
            "datasetio": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"kvstore": sqlite("d.db")},
                }
            ],
            "agents": [
                {
                    "provider_id": "meta-reference",  # as Llama Stack's templates: the eval's id too
                    "provider_type": "inline::meta-reference",
                    "config": {"persistence_store": sqlite("agents.db")},
                }
            ],
            "eval": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {"kvstore": sqlite("eval.db"), **eval_config},
                }
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "models": [
            {"model_id": "scripted", "provider_id": "fake", "provider_model_id": "guard"},
            {"model_id": "slow", "provider_id": "fake", "provider_model_id": "slow"},
            {"model_id": "broken", "provider_id": "fake", "provider_model_id": "error500"},
            {"model_id": "echo", "provider_id": "fake", "provider_model_id": "echo"},
        ],
        "jobs": {"progress_interval": 0.1, "poll_seconds": 0.2, "lease_seconds": 2, **(jobs or {})},
    }


@pytest.fixture
def slow_fake(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fake upstream of its own (its request counts are this test's) whose ``slow`` model takes 20 ms."""
    with fake_openai_server(tmp_path, slow_seconds=0.02) as server:
        yield server


def client(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def model_candidate(model: str = "scripted", **over: Any) -> dict[str, Any]:
    return {"eval_candidate": {"type": "model", "model": model, "sampling_params": SAMPLING}} | over


def requests_seen(fake: ServerProcess, model: str) -> int:
    return httpx.get(f"{fake.url}/_fake/requests").json().get(model, 0)


def job_record(server: ServerProcess, benchmark_id: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/eval/benchmarks/{benchmark_id}/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_benchmarks_evaluate_rows_and_run_eval(
    start_lamina: Callable[..., ServerProcess], slow_fake: ServerProcess, tmp_path: Path
) -> None:
    config = run_config(slow_fake, tmp_path / "state")
    # A benchmark in the run config, on a dataset of the run config.
    source = {"type": "uri", "uri": qa_csv()}
    config["datasets"] = [{"dataset_id": "qa", "purpose": "eval/messages-answer", "source": source}]
    subset = ["basic::subset_of"]
    config["benchmarks"] = [{"benchmark_id": "configured", "dataset_id": "qa", "scoring_functions": subset}]
    server = start_lamina(config)
    c = client(server)
    configured = c.benchmarks.retrieve(benchmark_id="configured")
    assert (configured.dataset_id, configured.scoring_functions) == ("qa", subset)
    # The same registration again is fine; a different one under the same id is a 409.
    c.benchmarks.register(benchmark_id="configured", dataset_id="qa", scoring_functions=subset)
    with pytest.raises(llama_stack_client.ConflictError, match="already registered differently"):
        c.benchmarks.register(
            benchmark_id="configured", dataset_id="qa", scoring_functions=["basic::equality"]
        )
    assert httpx.delete(f"{server.url}/v1/eval/benchmarks/configured").status_code == 200

    dataset = c.datasets.register(purpose="eval/messages-answer", source={"type": "uri", "uri": qa_csv()})
    rows = c.datasets.iterrows(dataset_id=dataset.identifier, limit=5).data
    benchmark_id = str(uuid.uuid4())
    c.benchmarks.register(
        benchmark_id=benchmark_id, dataset_id=dataset.identifier, scoring_functions=["basic::equality"]
    )
    assert [b.identifier for b in c.benchmarks.list()] == [benchmark_id]
    # The agents and eval providers share the id meta-reference (as in Llama Stack's templates).
    listed = {(p.api, p.provider_id): p.health["status"] for p in c.providers.list()}
    assert listed[("agents", "meta-reference")] != "Error" and listed[("eval", "meta-reference")] != "Error"
    got = c.benchmarks.retrieve(benchmark_id=benchmark_id)
    assert (got.dataset_id, got.scoring_functions, got.provider_id) == (
        dataset.identifier,
        ["basic::equality"],
        "meta-reference",
    )

    # evaluate_rows: the model answers each row's chat_completion_input; equality against expected_answer.
    system = {"role": "system", "content": "Answer with a name only."}
    response = c.eval.evaluate_rows(
        benchmark_id=benchmark_id,
        input_rows=rows,
        scoring_functions=["basic::equality", "basic::subset_of"],
        benchmark_config=model_candidate(system_message=system),
    )
    assert [g["generated_answer"] for g in response.generations] == [s for _, s, _ in QA]
    equality = response.scores["basic::equality"]
    assert [r["score"] for r in equality.score_rows] == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert equality.aggregated_results["accuracy"]["accuracy"] == pytest.approx(0.6)
    assert "basic::subset_of" in response.scores

    # run_eval: a job numbered per benchmark; a short one has ended when run_eval answers.
    job = c.eval.run_eval(benchmark_id=benchmark_id, benchmark_config=model_candidate())
    assert (job.job_id, job.status) == ("0", "completed")
    assert c.eval.jobs.status(job_id="0", benchmark_id=benchmark_id).status == "completed"
    result = c.eval.jobs.retrieve(job_id="0", benchmark_id=benchmark_id)
    assert [g["generated_answer"] for g in result.generations] == [s for _, s, _ in QA]
    assert [r["score"] for r in result.scores["basic::equality"].score_rows] == [1.0, 1.0, 0.0, 1.0, 0.0]
    record = job_record(server, benchmark_id, "0")
    assert record["progress"] == {"done": 5, "total": 5}
    system_job = httpx.get(f"{server.url}/v1/jobs/{record['lamina_job_id']}").json()
    assert system_job["kind"] == "eval.run" and system_job["status"] == "completed"

    # num_examples: only the first rows.
    two = c.eval.run_eval(benchmark_id=benchmark_id, benchmark_config=model_candidate(num_examples=2))
    assert two.job_id == "1"
    assert len(c.eval.jobs.retrieve(job_id="1", benchmark_id=benchmark_id).generations) == 2

    # An upstream failure fails the job, naming the row and the provider; its result is a 400 saying so.
    failed = c.eval.run_eval(benchmark_id=benchmark_id, benchmark_config=model_candidate("broken"))
    assert failed.status == "failed"
    error = job_record(server, benchmark_id, failed.job_id)["error"]
    assert "eval row " in error and "provider 'fake'" in error, error
    with pytest.raises(llama_stack_client.BadRequestError, match="is failed"):
        c.eval.jobs.retrieve(job_id=failed.job_id, benchmark_id=benchmark_id)

    # Bad input: 4xx naming what is wrong.
    with pytest.raises(llama_stack_client.BadRequestError, match="dataset 'nope'"):
        c.benchmarks.register(benchmark_id="b2", dataset_id="nope", scoring_functions=["basic::equality"])
    with pytest.raises(llama_stack_client.BadRequestError, match="basic::nope"):
        c.benchmarks.register(
            benchmark_id="b2", dataset_id=dataset.identifier, scoring_functions=["basic::nope"]
        )
    with pytest.raises(llama_stack_client.NotFoundError, match="benchmark 'b2' is not registered"):
        c.benchmarks.retrieve(benchmark_id="b2")
    with pytest.raises(llama_stack_client.NotFoundError, match="no eval job '7'"):
        c.eval.jobs.status(job_id="7", benchmark_id=benchmark_id)
    with pytest.raises(llama_stack_client.BadRequestError, match="'nosuch' is not a registered llm model"):
        c.eval.run_eval(benchmark_id=benchmark_id, benchmark_config=model_candidate("nosuch"))
    with pytest.raises(llama_stack_client.BadRequestError, match=r"row 0 cannot be answered: .*input col"):
        c.eval.evaluate_rows(
            benchmark_id=benchmark_id,
            input_rows=[{"question": "q", "expected_answer": "a"}],
            scoring_functions=["basic::equality"],
            benchmark_config=model_candidate(),
        )

    # Results are kept: after a restart the finished jobs answer the same.
    server.restart()
    again = c.eval.jobs.retrieve(job_id="0", benchmark_id=benchmark_id)
    assert again.generations == result.generations and again.scores == result.scores
    assert c.eval.jobs.status(job_id=failed.job_id, benchmark_id=benchmark_id).status == "failed"

    # Unregister (a Lamina route: llama-stack-client 0.2.12 has no method for it).
    assert httpx.delete(f"{server.url}/v1/eval/benchmarks/{benchmark_id}").status_code == 200
    # The run config's benchmark, deleted above, was registered again by the restart's start-up.
    assert [b.identifier for b in c.benchmarks.list()] == ["configured"]


def agents_left(server: ServerProcess) -> list[dict[str, Any]]:
    # llama-stack-client 0.2.12 has no method to list agents; the route does.
    response = httpx.get(f"{server.url}/v1/agents")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def agent_candidate(model: str) -> dict[str, Any]:
    return {
        "type": "agent",
        "config": {"model": model, "instructions": "Answer with a name.", "sampling_params": SAMPLING},
    }


def agent_run(model: str) -> dict[str, Any]:
    return {"eval_candidate": agent_candidate(model)}


def test_agent_candidate_answers_each_row_in_its_own_session(
    start_lamina: Callable[..., ServerProcess], slow_fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(slow_fake, tmp_path / "state"))
    c = client(server)
    dataset = c.datasets.register(purpose="eval/messages-answer", source={"type": "uri", "uri": qa_csv()})
    c.benchmarks.register(
        benchmark_id="agentic", dataset_id=dataset.identifier, scoring_functions=["basic::equality"]
    )
    job = c.eval.run_eval(benchmark_id="agentic", benchmark_config=agent_run("scripted"))
    assert job.status == "completed", job_record(server, "agentic", job.job_id)
    result = c.eval.jobs.retrieve(job_id=job.job_id, benchmark_id="agentic")
    assert [g["generated_answer"] for g in result.generations] == [s for _, s, _ in QA]
    assert result.scores["basic::equality"].aggregated_results["accuracy"]["accuracy"] == pytest.approx(0.6)
    # The run's agent, its sessions and turns are deleted when it ends: the answers are in the result.
    assert agents_left(server) == []

    # Each row is a turn of a session of its own: the ``echo`` model answers with the request it got,
    # which holds that row's user message and no other row's.
    rows = [{"input_query": f"question {i}", "expected_answer": "x"} for i in range(3)]
    response = c.eval.evaluate_rows(
        benchmark_id="agentic",
        input_rows=rows,
        scoring_functions=["basic::equality"],
        benchmark_config=agent_run("echo"),
    )
    for i, generation in enumerate(response.generations):
        sent = json.loads(generation["generated_answer"])
        users = [m["content"] for m in sent["messages"] if m["role"] == "user"]
        assert len(users) == 1 and f"question {i}" in json.dumps(users[0]), users
    assert agents_left(server) == [], "evaluate_rows deletes its agent too"


def test_an_agent_candidates_agent_is_deleted_when_its_job_fails_or_is_cancelled(
    start_lamina: Callable[..., ServerProcess], slow_fake: ServerProcess, tmp_path: Path
) -> None:
    config = run_config(
        slow_fake, tmp_path / "state", run_eval_wait_seconds=0, chunk_rows=4, max_concurrency=2
    )
    server = start_lamina(config)
    c = client(server)
    c.datasets.register(dataset_id="many", purpose="eval/question-answer", source=rows_source(400))
    c.benchmarks.register(benchmark_id="long", dataset_id="many", scoring_functions=["basic::equality"])

    def ended(job_id: str) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            record = job_record(server, "long", job_id)
            return record if record["status"] in ("completed", "failed", "cancelled") else None

        return check

    failing = c.eval.run_eval(benchmark_id="long", benchmark_config=agent_run("broken"))
    record = until(ended(failing.job_id), "the failing job to end")
    assert record["status"] == "failed" and "eval row" in record["error"], record
    assert until(lambda: agents_left(server) == [], "the failed job's agent to go")

    job = c.eval.run_eval(benchmark_id="long", benchmark_config=agent_run("slow"))
    until(lambda: job_record(server, "long", job.job_id)["progress"]["done"] >= 4, "rows answered")
    assert len(agents_left(server)) == 1, "the running job's agent"
    c.eval.jobs.cancel(job_id=job.job_id, benchmark_id="long")
    assert until(ended(job.job_id), "the cancel")["status"] == "cancelled"
    assert until(lambda: agents_left(server) == [], "the cancelled job's agent to go")


def test_an_agent_eval_killed_midway_leaves_no_agent_once_resumed(
    start_lamina: Callable[..., ServerProcess], slow_fake: ServerProcess, tmp_path: Path
) -> None:
    """kill -9 skips every cleanup: the job's next attempt deletes the agent the killed one left."""
    config = run_config(
        slow_fake, tmp_path / "state", run_eval_wait_seconds=0, chunk_rows=4, max_concurrency=2
    )
    server = start_lamina(config, work_dir=tmp_path / "server", name="first")
    c = client(server)
    c.datasets.register(dataset_id="rows", purpose="eval/question-answer", source=rows_source(60))
    c.benchmarks.register(benchmark_id="agentic", dataset_id="rows", scoring_functions=["basic::equality"])
    job = c.eval.run_eval(benchmark_id="agentic", benchmark_config=agent_run("slow"))
    until(lambda: job_record(server, "agentic", job.job_id)["progress"]["done"] >= 8, "rows answered")
    killed_agents = agents_left(server)
    assert len(killed_agents) == 1
    server.kill()

    again = start_lamina(config, work_dir=tmp_path / "server", name="second")
    record = until(
        lambda: (r := job_record(again, "agentic", job.job_id))["status"] in ("completed", "failed") and r,
        "the resumed eval to end",
        timeout=300,
    )
    assert record["status"] == "completed", record
    assert agents_left(again) == [], f"left over: {agents_left(again)} (the killed run's: {killed_agents})"


FAKE_ANSWER = "Hello from the fake upstream."


def rows_source(n: int) -> dict[str, Any]:
    return {
        "type": "rows",
        "rows": [{"input_query": f"question {i}", "expected_answer": FAKE_ANSWER} for i in range(n)],
    }


def test_run_eval_progress_and_cancel(
    start_lamina: Callable[..., ServerProcess], slow_fake: ServerProcess, tmp_path: Path
) -> None:
    config = run_config(
        slow_fake, tmp_path / "state", run_eval_wait_seconds=0, chunk_rows=4, max_concurrency=2
    )
    server = start_lamina(config)
    c = client(server)
    c.datasets.register(dataset_id="many", purpose="eval/question-answer", source=rows_source(400))
    c.benchmarks.register(benchmark_id="long", dataset_id="many", scoring_functions=["basic::equality"])
    job = c.eval.run_eval(benchmark_id="long", benchmark_config=model_candidate("slow"))
    assert job.status in ("scheduled", "in_progress")
    seen = until(lambda: (r := job_record(server, "long", job.job_id))["progress"]["done"] >= 8 and r, "rows")
    assert seen["status"] == "in_progress" and seen["progress"]["total"] == 400
    with pytest.raises(llama_stack_client.BadRequestError, match=r"is in_progress.* rows answered"):
        c.eval.jobs.retrieve(job_id=job.job_id, benchmark_id="long")
    c.eval.jobs.cancel(job_id=job.job_id, benchmark_id="long")
    assert c.eval.jobs.status(job_id=job.job_id, benchmark_id="long").status == "cancelled"
    finished = f"eval job '{job.job_id}' of benchmark 'long' is cancelled already"
    with pytest.raises(llama_stack_client.ConflictError, match=finished):
        c.eval.jobs.cancel(job_id=job.job_id, benchmark_id="long")
    stopped_at = requests_seen(slow_fake, "slow")
    time.sleep(0.5)
    assert requests_seen(slow_fake, "slow") == stopped_at, "cancel stops the generation"
    assert stopped_at < 400

    # Rows the benchmark's functions cannot score (no expected_answer) fail the run at their chunk,
    # not after every row was answered.
    unscorable = [{"input_query": f"question {i}"} for i in range(400)]
    source = {"type": "rows", "rows": unscorable}
    c.datasets.register(dataset_id="unscorable", purpose="eval/question-answer", source=source)
    c.benchmarks.register(benchmark_id="bad", dataset_id="unscorable", scoring_functions=["basic::equality"])
    failing = c.eval.run_eval(benchmark_id="bad", benchmark_config=model_candidate("slow"))

    def ended() -> dict[str, Any] | None:
        record = job_record(server, "bad", failing.job_id)
        return record if record["status"] in ("completed", "failed", "cancelled") else None

    record = until(ended, "the job to end")
    assert record["status"] == "failed", record
    assert "scoring the rows from dataset row 0 on" in record["error"], record["error"]
    assert "no column 'expected_answer'" in record["error"], record["error"]
    assert requests_seen(slow_fake, "slow") - stopped_at < 40, "it stopped within the first chunks"


def check_kill_and_resume(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, config: dict, work: Path
) -> None:
    """THE acceptance: 1,000 rows, the server killed (SIGKILL) about halfway, restarted: the job ends
    completed, with its progress visible throughout, and the rows answered before the kill are not
    answered again."""
    settings = config["providers"]["eval"][0]["config"]
    chunk = settings["chunk_rows"]
    in_flight = chunk * (1 + -(-settings["max_concurrency"] // chunk))  # rows of the chunks in flight
    server = start_lamina(config, work_dir=work, name="first")
    c = client(server)
    c.datasets.register(dataset_id="thousand", purpose="eval/question-answer", source=rows_source(1000))
    c.benchmarks.register(benchmark_id="big", dataset_id="thousand", scoring_functions=["basic::equality"])
    job = c.eval.run_eval(benchmark_id="big", benchmark_config=model_candidate("slow"))
    progress = [job_record(server, "big", job.job_id)["progress"]["done"]]

    def half_done() -> bool:
        progress.append(job_record(server, "big", job.job_id)["progress"]["done"])
        return progress[-1] >= 500

    until(half_done, "half the rows")
    server.kill()
    sent_before_restart = requests_seen(fake, "slow")
    done_before_kill = progress[-1]
    assert 500 <= done_before_kill < 1000

    again = start_lamina(config, work_dir=work, name="second")
    c = client(again)

    def finished() -> bool:
        record = job_record(again, "big", job.job_id)
        progress.append(record["progress"]["done"])
        return record["status"] in ("completed", "failed", "cancelled") and record

    record = until(finished, "the resumed eval to end", timeout=300)
    assert record["status"] == "completed", record
    assert progress == sorted(progress), "progress never goes back, across the restart too"
    assert progress[-1] == 1000 and record["progress"]["total"] == 1000
    sent_after_restart = requests_seen(fake, "slow") - sent_before_restart
    assert sent_after_restart <= 1000 - done_before_kill, "rows answered before the kill were not sent again"
    assert requests_seen(fake, "slow") <= 1000 + in_flight, "only the chunks in flight answered twice"
    result = c.eval.jobs.retrieve(job_id=job.job_id, benchmark_id="big")
    assert len(result.generations) == 1000
    assert all(g["generated_answer"] == FAKE_ANSWER for g in result.generations)
    assert result.scores["basic::equality"].aggregated_results["accuracy"]["accuracy"] == 1.0
    system_job = httpx.get(f"{again.url}/v1/jobs/{record['lamina_job_id']}").json()
    assert system_job["attempts"] == 2


def test_a_1000_row_eval_killed_halfway_resumes_and_completes(
    start_lamina: Callable[..., ServerProcess], slow_fake: ServerProcess, tmp_path: Path
) -> None:
    config = run_config(
        slow_fake, tmp_path / "state", run_eval_wait_seconds=0, chunk_rows=16, max_concurrency=4
    )
    check_kill_and_resume(start_lamina, slow_fake, config, tmp_path / "server")


@pytest.mark.postgres
def test_a_1000_row_eval_on_postgres_killed_halfway_resumes_and_completes(
    start_lamina: Callable[..., ServerProcess],
    slow_fake: ServerProcess,
    postgres_server: PostgresServer,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:12]
    config = run_config(
        slow_fake,
        tmp_path / "state",
        jobs={"store": postgres_server.kvstore_config(table_name=f"jobs_{suffix}")},
        run_eval_wait_seconds=0,
        chunk_rows=16,
        max_concurrency=4,
    )
    eval_store = postgres_server.kvstore_config(table_name=f"eval_{suffix}")
    config["providers"]["eval"][0]["config"]["kvstore"] = eval_store
    check_kill_and_resume(start_lamina, slow_fake, config, tmp_path / "server")
