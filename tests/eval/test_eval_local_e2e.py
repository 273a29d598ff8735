"""Eval in the local distribution (`lamina run` with no argument): the bundled SmolLM2 as a model
candidate and as an agent's model over a small benchmark, offline."""

from __future__ import annotations

import time

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

MODEL = "SmolLM2-135M-Instruct"
ROWS = [
    {"input_query": "What is the capital of France?", "expected_answer": "Paris"},
    {"input_query": "What is 2 + 2?", "expected_answer": "4"},
]
SAMPLING = {"strategy": {"type": "greedy"}, "max_tokens": 8}


def test_a_model_and_an_agent_candidate_on_the_bundled_model(local_lamina: ServerProcess) -> None:
    client = LlamaStackClient(base_url=local_lamina.url, max_retries=0, timeout=300)
    source = {"type": "rows", "rows": ROWS}
    client.datasets.register(dataset_id="eval-local", purpose="eval/question-answer", source=source)
    client.benchmarks.register(
        benchmark_id="eval-local", dataset_id="eval-local", scoring_functions=["basic::subset_of"]
    )
    model = {"type": "model", "model": MODEL, "sampling_params": SAMPLING}
    job = client.eval.run_eval(benchmark_id="eval-local", benchmark_config={"eval_candidate": model})
    deadline = time.monotonic() + 240
    while job.status not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.eval.jobs.status(job_id=job.job_id, benchmark_id="eval-local")
    assert job.status == "completed", job
    result = client.eval.jobs.retrieve(job_id=job.job_id, benchmark_id="eval-local")
    # What SmolLM2 answers varies; that every row got an answer from the local model, and was scored,
    # does not.
    assert len(result.generations) == 2 and all(g["generated_answer"] for g in result.generations)
    assert len(result.scores["basic::subset_of"].score_rows) == 2

    config = {"model": MODEL, "instructions": "Answer briefly.", "sampling_params": SAMPLING}
    agent = {"type": "agent", "config": config}
    response = client.eval.evaluate_rows(
        benchmark_id="eval-local",
        input_rows=ROWS,
        scoring_functions=["basic::subset_of"],
        benchmark_config={"eval_candidate": agent},
    )
    assert len(response.generations) == 2 and all(g["generated_answer"] for g in response.generations)
    # The agent the eval created is gone with its sessions (llama-stack-client 0.2.12 cannot list agents).
    agents = httpx.get(f"{local_lamina.url}/v1/agents").json()["data"]
    assert [a for a in agents if a["agent_config"]["instructions"] == "Answer briefly."] == []
