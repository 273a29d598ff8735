"""basic::bfcl through a real ``lamina run``, driven by llama-stack-client 0.2.12: the Scoring API over
inline rows, score-batch over a registered dataset, and an eval of a BFCL benchmark (Llama Stack's
open-benchmark ``meta-reference-bfcl``) whose candidate is the fake OpenAI upstream's ``guard`` model
(``lamina.testing.fake_openai``: it answers the ``[[guard:<answer>]]`` directive in the messages, so
each row scripts the model's calls), with Llama Stack's bfcl_v3 row shape."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.conformance import ScoringConformance
from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

RUN_CONFIG = {
    "version": 2,
    "image_name": "scoring-bfcl-e2e",
    "apis": ["scoring", "datasetio"],
    "providers": {
        "scoring": [{"provider_id": "basic", "provider_type": "inline::basic", "config": {}}],
        "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
    },
}

SPOTIFY = {
    "name": "spotify.play",
    "description": "Play songs of an artist on Spotify.",
    "parameters": {
        "type": "dict",
        "properties": {
            "artist": {"type": "string", "description": "The artist."},
            "duration": {"type": "integer", "description": "Minutes to play."},
        },
        "required": ["artist", "duration"],
    },
}
PARALLEL_TRUTH = [
    {"spotify.play": {"artist": ["Taylor Swift"], "duration": [20]}},
    {"spotify.play": {"artist": ["Maroon 5"], "duration": [15]}},
]
JAVA_FN = {
    "name": "Intro.step",
    "description": "Step the intro animation.",
    "parameters": {
        "type": "dict",
        "properties": {"w": {"type": "integer"}, "h": {"type": "integer"}},
        "required": ["w", "h"],
    },
}


def row(id_: str, language: str, functions: list, truth: list, answer: str) -> dict[str, Any]:
    return {
        "id": id_,
        "language": language,
        "function": json.dumps(functions),
        "ground_truth": json.dumps(truth),
        "generated_answer": answer,
    }


ROWS = [
    row(
        "parallel_0",
        "Python",
        [SPOTIFY],
        PARALLEL_TRUTH,
        "[spotify_play(artist='maroon 5', duration=15), spotify.play(artist='Taylor Swift', duration=20)]",
    ),
    row(
        "parallel_0",
        "Python",
        [SPOTIFY],
        PARALLEL_TRUTH,
        "[spotify.play(artist='Taylor Swift', duration=20)]",
    ),
    row(
        "java_76", "Java", [JAVA_FN], [{"Intro.step": {"w": [800], "h": [600]}}], "[Intro.step(w=800, h=600)]"
    ),
    row("irrelevance_3", "Python", [SPOTIFY], [], "No function can tell the weather."),
    row("simple_1", "Python", [SPOTIFY], PARALLEL_TRUTH[:1], "Let me play it for you!"),
]
SCORES = [1.0, 0.0, 1.0, 1.0, 0.0]


@pytest.fixture
def client(start_lamina: Callable[..., ServerProcess]) -> LlamaStackClient:
    server = start_lamina(RUN_CONFIG)
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def test_bfcl_is_listed_and_scores_rows_with_the_reason_for_each_miss(client: LlamaStackClient) -> None:
    fn = client.scoring_functions.retrieve("basic::bfcl")
    assert fn.provider_id == "basic" and fn.provider_resource_id == "bfcl"
    assert fn.description == "BFCL complex scoring" and fn.return_type.type == "number"
    assert fn.params.aggregation_functions == ["accuracy"]

    result = client.scoring.score(input_rows=ROWS, scoring_functions={"basic::bfcl": None}).results[
        "basic::bfcl"
    ]
    assert [r["score"] for r in result.score_rows] == SCORES
    assert result.aggregated_results == {"accuracy": {"accuracy": 0.6, "num_correct": 3.0, "num_total": 5}}
    assert result.score_rows[1]["error_type"] == "parallel_function_checker_no_order:wrong_count"
    assert result.score_rows[4]["error_type"] == "ast_decoder:decoder_failed"


def test_a_malformed_row_is_a_400_naming_the_row_and_column(client: LlamaStackClient) -> None:
    bad = {k: v for k, v in ROWS[0].items() if k != "ground_truth"}
    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score(input_rows=[ROWS[0], bad], scoring_functions={"basic::bfcl": None})
    message = err.value.body["error"]["message"]
    assert "input_rows[1]" in message and "no column 'ground_truth'" in message, message
    # the server keeps serving
    assert client.scoring.score(input_rows=ROWS[:1], scoring_functions={"basic::bfcl": None}).results


def test_score_batch_over_a_bfcl_dataset(client: LlamaStackClient) -> None:
    client.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": ROWS}, dataset_id="bfcl"
    )
    response = client.scoring.score_batch(
        dataset_id="bfcl", scoring_functions={"basic::bfcl": None}, save_results_dataset=False
    )
    result = response.results["basic::bfcl"]
    assert [r["score"] for r in result.score_rows] == SCORES
    assert result.aggregated_results["accuracy"]["accuracy"] == 0.6


BENCHMARK = "meta-reference-bfcl"  # Llama Stack's open-benchmark name


def eval_config(fake: ServerProcess, state: Path) -> dict[str, Any]:
    def sqlite(name: str) -> dict[str, str]:
        return {"type": "sqlite", "db_path": str(state / name)}

    providers = {
        **RUN_CONFIG["providers"],
        "inference": [
            {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
        ],
        "agents": [
            {
                "provider_id": "meta-reference",
                "provider_type": "inline::meta-reference",
                "config": {"persistence_store": sqlite("agents.db")},
            }
        ],
        "eval": [
            {
                "provider_id": "meta-reference",
                "provider_type": "inline::meta-reference",
                "config": {"kvstore": sqlite("eval.db")},
            }
        ],
    }
    return {
        "version": 2,
        "image_name": "bfcl-eval-e2e",
        "providers": providers,
        "metadata_store": sqlite("registry.db"),
        "models": [{"model_id": "scripted", "provider_id": "fake", "provider_model_id": "guard"}],
    }


def test_an_eval_of_a_bfcl_benchmark_scores_the_models_calls(
    start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    c = LlamaStackClient(base_url=start_lamina(eval_config(fake_upstream, tmp_path)).url, max_retries=0)
    # Each row's messages script what the model answers (a directive cannot hold "]]": the answer's
    # closing bracket is left out, which BFCL's decoding adds back).
    scripted = [
        "[spotify.play(artist='Taylor Swift', duration=20), spotify.play(artist='Maroon 5', duration=15)",
        "[spotify.play(artist='Taylor Swift', duration=20)",
        "[Intro.step(w=800, h=600)",
        "The weather cannot be looked up with these functions.",
        "[spotify.play(artist='Adele')",
    ]
    rows = []
    for base, answer in zip(ROWS, scripted, strict=True):
        messages = [{"role": "user", "content": f"Call the functions. [[guard:{answer}]]"}]
        rows.append({**base, "generated_answer": "stale", "chat_completion_input": json.dumps(messages)})
    source = {"type": "rows", "rows": rows}
    c.datasets.register(purpose="eval/messages-answer", source=source, dataset_id="bfcl")
    c.benchmarks.register(benchmark_id=BENCHMARK, dataset_id="bfcl", scoring_functions=["basic::bfcl"])
    candidate = {
        "eval_candidate": {
            "type": "model",
            "model": "scripted",
            "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 64},
        }
    }

    response = c.eval.evaluate_rows(
        benchmark_id=BENCHMARK,
        input_rows=rows,
        scoring_functions=["basic::bfcl"],
        benchmark_config=candidate,
    )
    assert [g["generated_answer"] for g in response.generations] == scripted
    scores = response.scores["basic::bfcl"]
    assert [r["score"] for r in scores.score_rows] == SCORES
    assert scores.score_rows[4]["error_type"] == "simple_function_checker:missing_required"

    job = c.eval.run_eval(benchmark_id=BENCHMARK, benchmark_config=candidate)
    deadline = time.monotonic() + 120
    while c.eval.jobs.status(job_id=job.job_id, benchmark_id=BENCHMARK).status != "completed":
        assert time.monotonic() < deadline, "the eval job did not complete"
        time.sleep(0.2)
    result = c.eval.jobs.retrieve(job_id=job.job_id, benchmark_id=BENCHMARK)
    assert result.scores["basic::bfcl"].aggregated_results["accuracy"]["accuracy"] == pytest.approx(0.6)


class TestBfclConformance(ScoringConformance):
    provider_id = "basic"
    function = "basic::bfcl"
    rows = ROWS[:3]
    needed_column = "ground_truth"
    run_config = RUN_CONFIG
