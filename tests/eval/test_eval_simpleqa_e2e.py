"""A SimpleQA eval as Llama Stack's benchmark notebook runs one: a benchmark scored by
``llm-as-judge::405b-simpleqa``, through a real ``lamina run`` driven by llama-stack-client 0.2.12.

The candidate and the judge are the fake OpenAI upstream's ``guard`` model behind ``remote::vllm``
(``lamina.testing.fake_openai``), which answers the last ``[[guard:<answer>]]`` directive of its prompt.
Each row scripts both: its ``chat_completion_input`` the candidate's answer, its ``input_query`` (which
the grader prompt quotes, and which the candidate does not read) the judge's letter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess, fake_openai_server

pytestmark = pytest.mark.e2e

FN = "llm-as-judge::405b-simpleqa"
# (question, the candidate's answer, the expected answer, the judge's letter)
QA = [
    ("Capital of Peru?", "Lima", "Lima", "A"),
    ("Author of Dracula?", "Poe", "Bram Stoker", "B"),
    ("Year of the Moon landing?", "No idea", "1969", "C"),
]
SAMPLING = {"strategy": {"type": "greedy"}, "max_tokens": 16}
CANDIDATE = {"eval_candidate": {"type": "model", "model": "candidate", "sampling_params": SAMPLING}}


def rows() -> list[dict[str, Any]]:
    def row(question: str, answer: str, expected: str, letter: str) -> dict[str, Any]:
        messages = [{"role": "user", "content": f"{question} [[guard:{answer}]]"}]
        return {
            "input_query": f"{question} [[guard:{letter}]]",
            "expected_answer": expected,
            "chat_completion_input": json.dumps(messages),
        }

    return [row(*qa) for qa in QA]


def run_config(fake: ServerProcess, state: Path) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "eval-simpleqa-e2e",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
            "scoring": [
                {"provider_id": "llm-as-judge", "provider_type": "inline::llm-as-judge", "config": {}}
            ],
            "eval": [
                {"provider_id": "meta-reference", "provider_type": "inline::meta-reference", "config": {}}
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [
            {"model_id": "candidate", "provider_id": "fake", "provider_model_id": "guard"},
            {"model_id": "judge", "provider_id": "fake", "provider_model_id": "guard"},
        ],
    }


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fake upstream of its own: its request counts are this test's."""
    with fake_openai_server(tmp_path) as server:
        yield server


def requests_seen(fake: ServerProcess) -> int:
    return httpx.get(f"{fake.url}/_fake/requests").json().get("guard", 0)


def test_a_simpleqa_benchmark_is_graded_by_the_judge_its_run_names(
    start_lamina: Callable[..., ServerProcess], fake: ServerProcess, tmp_path: Path
) -> None:
    server = start_lamina(run_config(fake, tmp_path / "state"))
    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    source = {"type": "rows", "rows": rows()}
    c.datasets.register(dataset_id="simpleqa", purpose="eval/messages-answer", source=source)
    c.benchmarks.register(benchmark_id="simpleqa", dataset_id="simpleqa", scoring_functions=[FN])

    # The function's default judge is not served: a 400 before any row is answered, naming the field
    # of the run that chooses the judge.
    with pytest.raises(llama_stack_client.BadRequestError) as err:
        c.eval.run_eval(benchmark_id="simpleqa", benchmark_config=CANDIDATE)
    assert err.value.body["error"]["param"] == f"benchmark_config.scoring_params.{FN}.judge_model"
    message = err.value.body["error"]["message"]
    assert "judge_model 'meta-llama/Llama-3.1-405B-Instruct', which is not a registered llm model" in message
    assert "Registered llm models: candidate, judge" in message
    with pytest.raises(llama_stack_client.BadRequestError) as err:
        c.eval.evaluate_rows(
            benchmark_id="simpleqa", input_rows=rows(), scoring_functions=[FN], benchmark_config=CANDIDATE
        )
    assert err.value.body["error"]["param"] == f"benchmark_config.scoring_params.{FN}.judge_model"
    assert requests_seen(fake) == 0, "no row was answered"
    # A judge the run names that is not served either is the same 400.
    bad = CANDIDATE | {"scoring_params": {FN: {"type": "llm_as_judge", "judge_model": "nobody"}}}
    with pytest.raises(llama_stack_client.BadRequestError, match="judge_model 'nobody'"):
        c.eval.run_eval(benchmark_id="simpleqa", benchmark_config=bad)

    # The run names its judge: the function's grader prompt and regex grade each row.
    judge = {"type": "llm_as_judge", "judge_model": "judge", "aggregation_functions": ["categorical_count"]}
    run = CANDIDATE | {"scoring_params": {FN: judge}}
    job = c.eval.run_eval(benchmark_id="simpleqa", benchmark_config=run)
    assert job.status == "completed", job
    result = c.eval.jobs.retrieve(job_id=job.job_id, benchmark_id="simpleqa")
    assert [g["generated_answer"] for g in result.generations] == [answer for _, answer, _, _ in QA]
    assert [r["score"] for r in result.scores[FN].score_rows] == [letter for *_, letter in QA]
    aggregated = result.scores[FN].aggregated_results
    assert aggregated == {"categorical_count": {"categorical_count": {"A": 1, "B": 1, "C": 1}}}
