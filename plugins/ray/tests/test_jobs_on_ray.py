"""Jobs on the ray executor, on a real local Ray cluster of two nodes (conftest.py),
through real ``lamina run`` processes: OpenAI batches driven by the OpenAI SDK (the same 1,000-line batch
completes on Ray exactly as on the inline executor; a batch cancelled mid-way ends ``cancelled`` with
partial output) and an eval run driven by llama-stack-client (its rows answered on the actors, scored as
inline), a batch agent run, and a post-training job whose training runs in a Ray actor. The upstream is the
fake OpenAI server (its ``gated`` model holds lines in flight on demand, its ``guard`` model answers the
``[[guard:...]]`` directive of a prompt)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from lamina.testing.processes import ServerProcess, fake_openai_server, until

pytestmark = pytest.mark.e2e

if sys.platform != "linux":
    pytest.skip("the local two-node Ray cluster needs Linux", allow_module_level=True)


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with fake_openai_server(tmp_path_factory.mktemp("fake")) as server:
        yield server


def run_config(
    fake: ServerProcess, state: Path, executor: dict[str, Any] | None, **batches: Any
) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    # Each server its own jobs store: sharing one, either would run the other's batch (as replicas do).
    jobs: dict[str, Any] = {
        "store": sqlite("jobs.db"),
        "progress_interval": 0.1,
        "poll_seconds": 0.2,
        "lease_seconds": 5,
    }
    if executor is not None:
        jobs |= {"executor": "ray", "executor_config": executor}
    return {
        "version": 2,
        "image_name": "batches-ray-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(state / "files"), "metadata_store": sqlite("files.db")},
                }
            ],
            "batches": [
                {
                    "provider_id": "reference",
                    "provider_type": "inline::reference",
                    "config": {"kvstore": sqlite("batches.db"), **batches},
                }
            ],
        },
        "metadata_store": sqlite("registry.db"),
        "inference_store": sqlite("inference.db"),
        "models": [
            {"model_id": "ok", "provider_id": "fake", "provider_model_id": "ok"},
            {"model_id": "gated", "provider_id": "fake", "provider_model_id": "gated"},
            {"model_id": "echo", "provider_id": "fake", "provider_model_id": "echo"},
        ],
        "jobs": jobs,
    }


def ray_settings(cluster: Any) -> dict[str, Any]:
    # The actors start only the inference provider (the lines' work calls nothing else).
    return {"address": cluster.address, "num_actors": 2, "max_in_flight": 8, "apis": ["inference"]}


def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=60)


def chat_line(custom_id: str, model: str = "ok") -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"hi [[mark:{custom_id}]]"}],
        "max_tokens": 8,
    }
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def upload(c: OpenAI, lines: list[dict[str, Any]]) -> str:
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    return c.files.create(file=("input.jsonl", text.encode()), purpose="batch").id  # type: ignore[arg-type]


def ended(c: OpenAI, batch_id: str, timeout: float = 180.0) -> Any:
    def check() -> Any:
        batch = c.batches.retrieve(batch_id)
        return batch if batch.status in ("completed", "failed", "expired", "cancelled") else None

    return until(check, f"batch {batch_id} to end", timeout)


def file_lines(c: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in c.files.content(file_id).text.splitlines()]


def gate(fake: ServerProcess, open_: bool | None = None) -> dict[str, Any]:
    if open_ is None:
        return httpx.get(f"{fake.url}/_fake/gate").json()
    return httpx.post(f"{fake.url}/_fake/gate", json={"open": open_}).json()


def without_generated_ids(line: dict[str, Any]) -> dict[str, Any]:
    """An output line minus what is generated per request (line id, request id, completion id, time)."""
    response = dict(line["response"])
    body = {k: v for k, v in response["body"].items() if k not in ("id", "created")}
    response = {k: v for k, v in response.items() if k != "request_id"} | {"body": body}
    return {k: v for k, v in line.items() if k != "id"} | {"response": response}


def run_batch(server: ServerProcess, ids: list[str]) -> tuple[Any, list[dict[str, Any]]]:
    c = client(server)
    batch = c.batches.create(
        input_file_id=upload(c, [chat_line(i) for i in ids]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = ended(c, batch.id)
    return done, file_lines(c, done.output_file_id)


def test_a_1000_line_batch_on_ray_completes_as_on_the_inline_executor(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, ray_cluster: Any, tmp_path: Path
) -> None:
    ids = [f"req-{i}" for i in range(1000)]
    inline = start_lamina(
        run_config(fake, tmp_path / "inline", None, max_concurrent_requests_per_batch=16), name="inline"
    )
    on_ray = start_lamina(
        run_config(fake, tmp_path / "ray", ray_settings(ray_cluster), max_concurrent_requests_per_batch=16),
        name="ray",
    )
    inline_done, inline_lines = run_batch(inline, ids)
    ray_done, ray_lines = run_batch(on_ray, ids)
    for done in (inline_done, ray_done):
        assert done.status == "completed", done
        assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (
            1000,
            1000,
            0,
        )
        assert done.error_file_id is None
    assert (ray_done.usage.input_tokens, ray_done.usage.output_tokens) == (5000, 3000)
    assert [line["custom_id"] for line in ray_lines] == ids  # each once, in input order
    assert [without_generated_ids(line) for line in ray_lines] == [
        without_generated_ids(line) for line in inline_lines
    ]
    [job] = httpx.get(f"{on_ray.url}/v1/jobs", params={"kind": "batches.run"}).json()["data"]
    assert (job["status"], job["progress"]) == ("completed", {"done": 1000, "total": 1000})
    assert "ray_pool_started" in on_ray.log_path.read_text()  # the lines ran on the actors


def test_a_batch_on_ray_carries_provider_data_and_cancelled_mid_way_ends_cancelled_with_partial_output(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, ray_cluster: Any, tmp_path: Path
) -> None:
    server = start_lamina(
        run_config(fake, tmp_path / "ray", ray_settings(ray_cluster), max_concurrent_requests_per_batch=2)
    )
    c = client(server)
    # The caller's provider data (its own upstream key) reaches the line's upstream call from the actor.
    header = {"X-LlamaStack-Provider-Data": json.dumps({"vllm_api_token": "caller-token"})}
    echoed = c.batches.create(
        input_file_id=upload(c, [chat_line("echo-1", model="echo")]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers=header,
    )
    [line] = file_lines(c, ended(c, echoed.id).output_file_id)
    sent = json.loads(line["response"]["body"]["choices"][0]["message"]["content"])
    assert sent["_authorization"] == "Bearer caller-token"

    gate(fake, False)
    try:
        lines = [chat_line(f"r{i}", model="ok" if i < 5 else "gated") for i in range(30)]
        batch = c.batches.create(
            input_file_id=upload(c, lines), endpoint="/v1/chat/completions", completion_window="24h"
        )
        until(lambda: gate(fake)["waiting"] == 2, "two lines held at the gate", timeout=120)
        running = c.batches.retrieve(batch.id)
        assert (running.status, running.request_counts.completed) == ("in_progress", 5)
        cancelled = c.batches.cancel(batch.id)
        assert cancelled.status == "cancelled"
    finally:
        gate(fake, True)
    # The Ray tasks of the held lines were cancelled: their requests ended without taking an answer.
    until(lambda: gate(fake)["waiting"] == 0, "the held lines' requests to end")
    time.sleep(0.2)
    answered = httpx.get(f"{fake.url}/_fake/marks").json()
    assert {m for m in answered if re.fullmatch(r"r\d+", m)} == {f"r{i}" for i in range(5)}
    assert [line["custom_id"] for line in file_lines(c, cancelled.output_file_id)] == [
        f"r{i}" for i in range(5)
    ]
    errors = file_lines(c, cancelled.error_file_id)
    assert [line["custom_id"] for line in errors] == [f"r{i}" for i in range(5, 30)]
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    jobs = httpx.get(f"{server.url}/v1/jobs", params={"kind": "batches.run"}).json()["data"]
    assert sorted(job["status"] for job in jobs) == ["cancelled", "completed"]  # the echo batch's, this one's


def eval_run_config(fake: ServerProcess, state: Path, executor: dict[str, Any] | None) -> dict[str, Any]:
    jobs: dict[str, Any] = {"store": {"type": "sqlite", "db_path": str(state / "jobs.db")}}
    if executor is not None:
        jobs |= {"executor": "ray", "executor_config": executor}
    return {
        "version": 2,
        "image_name": "eval-ray-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
            "scoring": [{"provider_id": "basic", "provider_type": "inline::basic", "config": {}}],
            "eval": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {"max_concurrency": 4, "chunk_rows": 8, "run_eval_wait_seconds": 0},
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [{"model_id": "candidate", "provider_id": "fake", "provider_model_id": "guard"}],
        "jobs": jobs,
    }


def eval_rows(n: int) -> list[dict[str, Any]]:
    """Row i asks the candidate to answer ``a<i>``; every third row expects something else."""
    return [
        {
            "chat_completion_input": json.dumps([{"role": "user", "content": f"q{i} [[guard:a{i}]]"}]),
            "expected_answer": f"a{i}" if i % 3 else "wrong",
        }
        for i in range(n)
    ]


def run_eval(server: ServerProcess) -> tuple[Any, Any]:
    from llama_stack_client import LlamaStackClient

    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    source = {"type": "rows", "rows": eval_rows(40)}
    c.datasets.register(dataset_id="qa", purpose="eval/messages-answer", source=source)
    c.benchmarks.register(benchmark_id="qa", dataset_id="qa", scoring_functions=["basic::equality"])
    candidate = {"type": "model", "model": "candidate", "sampling_params": {"max_tokens": 8}}
    job = c.eval.run_eval(benchmark_id="qa", benchmark_config={"eval_candidate": candidate})
    until(
        lambda: c.eval.jobs.status(job_id=job.job_id, benchmark_id="qa").status in ("completed", "failed"),
        "the eval job to end",
        timeout=120,
    )
    return c.eval.jobs.status(job_id=job.job_id, benchmark_id="qa"), c.eval.jobs.retrieve(
        job_id=job.job_id, benchmark_id="qa"
    )


def test_an_eval_run_on_ray_answers_its_rows_on_the_actors_and_scores_as_inline(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, ray_cluster: Any, tmp_path: Path
) -> None:
    inline = start_lamina(eval_run_config(fake, tmp_path / "inline", None), name="eval-inline")
    on_ray = start_lamina(eval_run_config(fake, tmp_path / "ray", ray_settings(ray_cluster)), name="eval-ray")
    inline_status, inline_result = run_eval(inline)
    ray_status, ray_result = run_eval(on_ray)
    assert (inline_status.status, ray_status.status) == ("completed", "completed")
    assert [g["generated_answer"] for g in ray_result.generations] == [f"a{i}" for i in range(40)]
    assert ray_result.generations == inline_result.generations
    ray_scores = ray_result.scores["basic::equality"]
    assert [r["score"] for r in ray_scores.score_rows] == [0.0 if i % 3 == 0 else 1.0 for i in range(40)]
    assert ray_scores.aggregated_results == inline_result.scores["basic::equality"].aggregated_results
    assert "ray_pool_started" in on_ray.log_path.read_text()  # the rows ran on the actors
    assert "ray_pool_started" not in inline.log_path.read_text()


def agents_run_config(fake: ServerProcess, state: Path, executor: dict[str, Any]) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    return {
        "version": 2,
        "image_name": "batch-agents-ray-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
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
        "models": [{"model_id": "guard", "provider_id": "fake", "provider_model_id": "guard"}],
        "jobs": {
            "store": sqlite("jobs.db"),
            "progress_interval": 0.1,
            "executor": "ray",
            "executor_config": executor,
        },
    }


def test_a_batch_agent_run_on_ray_runs_each_row_as_a_turn_on_the_actors(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, ray_cluster: Any, tmp_path: Path
) -> None:
    """The actors start the agents provider (and inference) on the server's agents store: each row's
    session and turn are made there, and readable through the server afterwards."""
    from llama_stack_client import LlamaStackClient

    settings = {**ray_settings(ray_cluster), "apis": ["agents"]}
    server = start_lamina(agents_run_config(fake, tmp_path / "state", settings), name="agents-ray")
    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    agent_id = c.agents.create(agent_config={"model": "guard", "instructions": "Answer."}).agent_id
    rows = [{"input": f"row {i} [[guard:answer {i}]]"} for i in range(20)]
    source = {"type": "rows", "rows": rows}
    c.datasets.register(dataset_id="inputs", purpose="eval/messages-answer", source=source)
    run = c.post(
        "/v1/batch-agents/jobs",
        body={"agent_id": agent_id, "dataset_id": "inputs", "max_concurrency": 4},
        cast_to=object,
    )

    def ended() -> Any:
        state = c.get(f"/v1/batch-agents/jobs/{run['id']}", cast_to=object)
        return state if state["status"] in ("completed", "failed", "cancelled") else None

    done = until(ended, "the batch agent run to end", timeout=120)
    assert done["status"] == "completed" and done["row_counts"] == {"total": 20, "completed": 20, "failed": 0}
    results = c.datasets.iterrows(dataset_id=done["results_dataset_id"], limit=100).data
    by_row = {int(r["row_index"]): r for r in results}
    assert sorted(by_row) == list(range(20))
    assert all(by_row[i]["output"] == f"answer {i}" and by_row[i]["status"] == "completed" for i in range(20))
    turn = c.agents.turn.retrieve(
        agent_id=agent_id, session_id=by_row[7]["session_id"], turn_id=by_row[7]["turn_id"]
    )
    assert turn.output_message.content == "answer 7"  # made on an actor, kept in the shared store
    assert "ray_pool_started" in server.log_path.read_text()


class TrainingServer:
    """A server whose inline::huggingface provider (``provider_config``) trains on the test cluster, with a
    two-row dataset and a tiny model."""

    def __init__(
        self,
        start_lamina: Callable[..., ServerProcess],
        ray_cluster: Any,
        tmp_path: Path,
        **provider_config: Any,
    ) -> None:
        pytest.importorskip("lamina_post_training_huggingface")
        from lamina_post_training_huggingface.tiny_model import build_tiny_llama

        qa = [("What color is the sky?", "Blue."), ("Capital of France?", "Paris.")]
        self.model = build_tiny_llama(tmp_path / "model", [f"{q} {a}" for q, a in qa] * 5)
        state = tmp_path / "state"
        sqlite = {"type": "sqlite", "db_path": str(state / "d.db")}
        localfs = {"provider_id": "localfs", "provider_type": "inline::localfs"}
        localfs["config"] = {"kvstore": sqlite}
        config = {
            "version": 2,
            "image_name": "post-training-ray",
            "providers": {
                "datasetio": [localfs],
                "post_training": [
                    {
                        "provider_id": "huggingface",
                        "provider_type": "inline::huggingface",
                        "config": {"device": "cpu", **provider_config},
                    }
                ],
            },
            "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
            "jobs": {
                "executor": "ray",
                "executor_config": {"address": ray_cluster.address},
                "progress_interval": 0.1,
                "poll_seconds": 0.2,
            },
        }
        self.server = start_lamina(config, name="post-training-ray")
        rows = [{"input_query": q, "expected_answer": a} for q, a in qa]
        self.dataset = httpx.post(
            f"{self.server.url}/v1/datasets",
            json={"purpose": "post-training/messages", "source": {"type": "rows", "rows": rows}},
        ).json()["identifier"]

    def submit(self, job_uuid: str, epochs: int) -> None:
        body = {
            "job_uuid": job_uuid,
            "model": str(self.model),
            "training_config": {
                "n_epochs": epochs,
                "max_steps_per_epoch": 100,
                "gradient_accumulation_steps": 1,
                "data_config": {
                    "dataset_id": self.dataset,
                    "batch_size": 1,
                    "shuffle": False,
                    "data_format": "instruct",
                },
                "optimizer_config": {
                    "optimizer_type": "adamw",
                    "lr": 1e-3,
                    "weight_decay": 0.0,
                    "num_warmup_steps": 0,
                },
            },
            "hyperparam_search_config": {},
            "logger_config": {},
        }
        response = httpx.post(f"{self.server.url}/v1/post-training/supervised-fine-tune", json=body)
        assert response.status_code == 200, response.text

    def status(self, job_uuid: str) -> dict[str, Any]:
        url = f"{self.server.url}/v1/post-training/job/status"
        return httpx.get(url, params={"job_uuid": job_uuid}).json()

    def finished(self, job_uuid: str, within: float = 240) -> dict[str, Any]:
        return until(
            lambda: (s := self.status(job_uuid))["status"] in ("completed", "failed", "cancelled") and s,
            f"training job {job_uuid} to finish",
            within,
        )


def test_a_post_training_job_on_ray_trains_in_an_actor_reports_progress_and_cancels(
    start_lamina: Callable[..., ServerProcess], ray_cluster: Any, tmp_path: Path
) -> None:
    """With jobs.executor ray, inline::huggingface trains in a Ray actor: progress, checkpoints and the
    result come back to the job; a cancel stops the actor's training."""
    training = TrainingServer(start_lamina, ray_cluster, tmp_path)
    server, submit, status = training.server, training.submit, training.status
    submit("on-ray", 2)
    final = training.finished("on-ray")
    assert final["status"] == "completed", final["error"]
    assert final["progress"] == {"done": 4, "total": 4}
    assert [m["step"] for m in final["metrics"]] == [1, 2, 3, 4]
    assert [cp["epoch"] for cp in final["checkpoints"]] == [1, 2]
    assert all(Path(cp["path"], "model.safetensors").is_file() for cp in final["checkpoints"])
    result = httpx.get(f"{server.url}/v1/jobs/{final['lamina_job_id']}").json()["result"]
    ran_on = result["ran_on"]  # a Ray actor's process, not the server's
    assert ran_on["ray_node_id"] and ran_on["ray_actor_id"] and ran_on["pid"] != server.pid

    submit("long", 10_000)
    until(lambda: status("long")["progress"]["done"] >= 2, "the long job to train on the actor")
    response = httpx.post(f"{server.url}/v1/post-training/job/cancel", json={"job_uuid": "long"})
    assert response.status_code == 200, response.text
    cancelled = status("long")
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["done"] < 20_000


def test_a_training_actor_no_node_can_place_fails_the_job_saying_why(
    start_lamina: Callable[..., ServerProcess], ray_cluster: Any, tmp_path: Path
) -> None:
    """More CPUs than any node has (each has 1): the job fails after ray_start_timeout, naming the setting
    and the cluster's free CPUs, instead of waiting forever for a placement."""
    training = TrainingServer(start_lamina, ray_cluster, tmp_path, ray_num_cpus=4, ray_start_timeout=3)
    training.submit("unplaceable", 1)
    final = training.finished("unplaceable", within=120)
    assert final["status"] == "failed"
    expected = r"did not start within 3 s \(ray_start_timeout\); it needs a node with 4 free CPU\(s\)"
    assert re.search(expected, final["error"]), final["error"]
    assert "(ray_num_cpus)" in final["error"]
