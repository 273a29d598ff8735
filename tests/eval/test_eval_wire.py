"""The Benchmarks and Eval models against llama-stack-client 0.2.12's own types and routes.

What the server sends must validate in the client's generated models with the fields it reads
intact; what the client (and Llama Stack's own integration tests) sends must validate here.
"""

from __future__ import annotations

import re
from pathlib import Path

import llama_stack_client
import pytest
from llama_stack_client.types import Benchmark as ClientBenchmark
from llama_stack_client.types import EvaluateResponse as ClientEvaluateResponse
from llama_stack_client.types import Job as ClientJob
from pydantic import ValidationError

from lamina.apis.eval import (
    Benchmark,
    Benchmarks,
    Eval,
    EvalJob,
    EvaluateResponse,
    EvaluateRowsRequest,
    RegisterBenchmarkRequest,
    RunEvalRequest,
)
from lamina.apis.jobs import JobStatus
from lamina.apis.scoring import ScoringResult
from lamina.apis.webmethod import routes_of


def test_a_benchmark_reads_in_the_client() -> None:
    benchmark = Benchmark(
        identifier="mmlu",
        provider_resource_id="mmlu",
        provider_id="meta-reference",
        dataset_id="mmlu-rows",
        scoring_functions=["basic::equality"],
        metadata={"n": 1},
    )
    parsed = ClientBenchmark.model_validate(benchmark.model_dump(mode="json"))
    assert (parsed.identifier, parsed.dataset_id, parsed.scoring_functions) == (
        "mmlu",
        "mmlu-rows",
        ["basic::equality"],
    )
    assert parsed.type == "benchmark" and parsed.metadata == {"n": 1}


@pytest.mark.parametrize("status", list(JobStatus))
def test_an_eval_job_reads_in_the_client(status: JobStatus) -> None:
    job = EvalJob(job_id="0", status=status, lamina_job_id="job-1", progress={"done": 1, "total": 2})
    parsed = ClientJob.model_validate(job.model_dump(mode="json"))
    assert (parsed.job_id, parsed.status) == ("0", status.value)


def test_an_evaluate_response_reads_in_the_client() -> None:
    response = EvaluateResponse(
        generations=[{"generated_answer": "Paris"}, {"generated_answer": "x", "context": "c"}],
        scores={
            "basic::equality": ScoringResult(
                score_rows=[{"score": 1.0}, {"score": 0.0}],
                aggregated_results={"accuracy": {"accuracy": 0.5}},
            )
        },
    )
    parsed = ClientEvaluateResponse.model_validate(response.model_dump(mode="json"))
    assert parsed.generations == response.generations
    assert parsed.scores["basic::equality"].score_rows == [{"score": 1.0}, {"score": 0.0}]
    assert parsed.scores["basic::equality"].aggregated_results == {"accuracy": {"accuracy": 0.5}}


# Llama Stack 0.2.12's tests/integration/eval/test_eval.py sends these.
LS_CONFIG = {"eval_candidate": {"type": "model", "model": "m", "sampling_params": {"temperature": 0.0}}}
AGENT_CONFIG = {
    "eval_candidate": {
        "type": "agent",
        "config": {"model": "m", "instructions": "be brief", "sampling_params": {"max_tokens": 8}},
    },
    "scoring_params": {"basic::equality": {"type": "basic", "aggregation_functions": ["accuracy"]}},
    "num_examples": 3,
}


@pytest.mark.parametrize("config", [LS_CONFIG, AGENT_CONFIG])
def test_what_the_client_sends_validates(config) -> None:
    run = RunEvalRequest.model_validate({"benchmark_id": "b", "benchmark_config": config})
    assert run.benchmark_config.eval_candidate.type == config["eval_candidate"]["type"]
    rows = EvaluateRowsRequest.model_validate(
        {
            "benchmark_id": "b",
            "input_rows": [{"input_query": "q"}],
            "scoring_functions": ["basic::equality"],
            "benchmark_config": config,
        }
    )
    assert rows.input_rows == [{"input_query": "q"}]
    register = RegisterBenchmarkRequest.model_validate(
        {"benchmark_id": "b", "dataset_id": "d", "scoring_functions": ["basic::subset_of"]}
    )
    assert register.metadata is None


@pytest.mark.parametrize(
    "config, field",
    [
        ({"eval_candidate": {"type": "robot", "model": "m"}}, "eval_candidate"),
        ({"eval_candidate": {"type": "model", "sampling_params": {}}}, "eval_candidate"),
        ({**LS_CONFIG, "num_examples": 0}, "num_examples"),
        ({**LS_CONFIG, "scoring_params": {"f": {"type": "nope"}}}, "scoring_params"),
    ],
)
def test_a_bad_config_names_its_field(config, field) -> None:
    with pytest.raises(ValidationError) as info:
        RunEvalRequest.model_validate({"benchmark_id": "b", "benchmark_config": config})
    assert {err["loc"][1] for err in info.value.errors()} == {field}


def test_routes_are_the_clients() -> None:
    """Every path the client's benchmarks and eval resources call is declared here with the same method."""
    root = Path(llama_stack_client.__file__).parent / "resources"
    source = "".join((root / name).read_text() for name in ("benchmarks.py", "eval/eval.py", "eval/jobs.py"))
    client_paths = set(re.findall(r'f?"(/v1/eval/benchmarks[^"]*)"', source))
    assert len(client_paths) == 6  # the client was read: list/register, get, jobs, evaluations, job, result
    ours = {d.openapi_path() for p in (Benchmarks, Eval) for d in routes_of(p)}
    assert client_paths <= ours, client_paths - ours
