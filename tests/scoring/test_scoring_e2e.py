"""Scoring functions and the Scoring API through a real ``lamina run``, driven by llama-stack-client 0.2.12.

Providers: inline::basic and inline::llm-as-judge, the judge being the fake OpenAI upstream's ``guard``
model behind ``remote::vllm`` (``lamina.testing.fake_openai``): it answers the ``[[guard:<answer>]]``
directive it finds in the prompt, so each judge prompt scripts the judge's answer ("Score: 7") and the
test checks what the server makes of it. Its ``error500`` model is a judge that fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

# Llama Stack's tests/integration/datasets/test_dataset.csv, as its scoring tests read it.
QA = [
    ("What is the capital of France?", "London", "Paris"),
    ("Who is the CEO of Meta?", "Mark Zuckerberg", "Mark Zuckerberg"),
    ("What is the largest planet in our solar system?", "Jupiter", "Jupiter"),
    ("What is the smallest country in the world?", "China", "Vatican City"),
    ("What is the highest mountain?", "Everest", "Everest"),
]
ROWS = [{"input_query": q, "generated_answer": g, "expected_answer": e} for q, g, e in QA]
JUDGE_PROMPT = "Output a number response: Score: <number>. [[guard:Score: 7]] Answer: {generated_answer}"


def run_config(fake: ServerProcess) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "scoring-e2e",
        "apis": ["inference", "scoring"],
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "scoring": [
                {"provider_id": "basic", "provider_type": "inline::basic", "config": {}},
                {"provider_id": "llm-as-judge", "provider_type": "inline::llm-as-judge", "config": {}},
            ],
        },
        "models": [
            {"model_id": "judge", "provider_id": "fake", "provider_model_id": "guard"},
            {"model_id": "broken-judge", "provider_id": "fake", "provider_model_id": "error500"},
        ],
        "scoring_fns": [
            {
                "scoring_fn_id": "config-judge",
                "provider_id": "llm-as-judge",
                "description": "a judge from the run config",
                "return_type": {"type": "number"},
                "params": {
                    "type": "llm_as_judge",
                    "judge_model": "judge",
                    "prompt_template": JUDGE_PROMPT,
                    "judge_score_regexes": [r"Score: (\d+)"],
                    "aggregation_functions": ["average"],
                },
            }
        ],
    }


@pytest.fixture
def client(start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess) -> LlamaStackClient:
    server = start_lamina(run_config(fake_upstream))
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def judge_params(**over: Any) -> dict[str, Any]:
    return {
        "type": "llm_as_judge",
        "judge_model": "judge",
        "prompt_template": JUDGE_PROMPT,
        "judge_score_regexes": [r"Score: (\d+)"],
        "aggregation_functions": ["categorical_count"],
    } | over


def test_functions_list_get_and_register(client: LlamaStackClient) -> None:
    fns = {f.identifier: f for f in client.scoring_functions.list()}
    assert {
        "basic::equality",
        "basic::subset_of",
        "basic::regex_parser_multiple_choice_answer",
        "basic::regex_parser_math_response",
        "basic::docvqa",
        "llm-as-judge::base",
        "config-judge",
    } <= set(fns)
    assert fns["basic::equality"].provider_id == "basic"
    assert fns["basic::equality"].provider_resource_id == "equality"
    assert fns["basic::equality"].params.aggregation_functions == ["accuracy"]
    assert fns["llm-as-judge::base"].provider_id == "llm-as-judge"
    assert fns["config-judge"].params.judge_model == "judge"

    got = client.scoring_functions.retrieve("basic::regex_parser_math_response")
    assert got.params.type == "regex_parser" and got.return_type.type == "number"
    with pytest.raises(llama_stack_client.NotFoundError) as err:
        client.scoring_functions.retrieve("basic::nope")
    assert "basic::equality" in str(err.value)  # the 404 lists what is registered

    # Llama Stack's test_scoring_functions_register, then the same call again (idempotent).
    for _ in range(2):
        client.scoring_functions.register(
            scoring_fn_id="llm-as-judge-test-prompt",
            provider_id="llm-as-judge",
            description="LLM as judge scoring function with test prompt",
            return_type={"type": "string"},
            params=judge_params(),
        )
    assert client.scoring_functions.retrieve("llm-as-judge-test-prompt").provider_id == "llm-as-judge"
    with pytest.raises(llama_stack_client.APIStatusError) as err:  # the same id, defined differently
        client.scoring_functions.register(
            scoring_fn_id="llm-as-judge-test-prompt",
            provider_id="llm-as-judge",
            description="another",
            return_type={"type": "string"},
            params=judge_params(),
        )
    assert err.value.status_code == 409


def test_registrations_the_provider_refuses_are_400s(client: LlamaStackClient) -> None:
    cases = [
        ("llm-as-judge", None, {"type": "basic"}, "params"),
        ("llm-as-judge", None, judge_params(prompt_template="{input_query"), "params.prompt_template"),
        (
            "llm-as-judge",
            None,
            judge_params(judge_score_regexes=["(unclosed"]),
            "params.judge_score_regexes[0]",
        ),
        ("basic", "no-such-fn", None, "provider_scoring_fn_id"),
        ("nowhere", None, None, "provider_id"),
    ]
    for provider_id, provider_fn_id, params, field in cases:
        with pytest.raises(llama_stack_client.BadRequestError) as err:
            client.scoring_functions.register(
                scoring_fn_id="refused",
                provider_id=provider_id,
                provider_scoring_fn_id=provider_fn_id,
                description="x",
                return_type={"type": "number"},
                params=params,
            )
        assert err.value.body["error"]["param"] == field, err.value.body
    assert "refused" not in {f.identifier for f in client.scoring_functions.list()}


def test_score_equality_with_aggregations(client: LlamaStackClient) -> None:
    # Llama Stack's test_scoring_score and test_scoring_score_with_aggregation_functions[basic].
    response = client.scoring.score(input_rows=ROWS, scoring_functions={"basic::equality": None})
    result = response.results["basic::equality"]
    assert [r["score"] for r in result.score_rows] == [0.0, 1.0, 1.0, 0.0, 1.0]
    assert result.aggregated_results == {"accuracy": {"accuracy": 0.6, "num_correct": 3.0, "num_total": 5}}

    aggregations = ["accuracy", "median", "categorical_count", "average"]
    response = client.scoring.score(
        input_rows=ROWS,
        scoring_functions={
            "basic::subset_of": {"type": "basic", "aggregation_functions": aggregations},
            "basic::regex_parser_multiple_choice_answer": {
                "type": "regex_parser",
                "parsing_regexes": [r"Score: (\d+)"],
                "aggregation_functions": aggregations,
            },
        },
    )
    subset = response.results["basic::subset_of"].aggregated_results
    assert subset == {
        "accuracy": {"accuracy": 0.6, "num_correct": 3.0, "num_total": 5},
        "median": {"median": 1.0},
        "categorical_count": {"categorical_count": {"0.0": 2, "1.0": 3}},
        "average": {"average": 0.6},
    }
    assert len(response.results["basic::regex_parser_multiple_choice_answer"].aggregated_results) == 4


def test_llm_as_judge_scores_through_the_inference_api(client: LlamaStackClient) -> None:
    # Llama Stack's test_scoring_score_with_params_llm_as_judge.
    response = client.scoring.score(input_rows=ROWS, scoring_functions={"llm-as-judge::base": judge_params()})
    result = response.results["llm-as-judge::base"]
    assert [r["score"] for r in result.score_rows] == ["7"] * 5
    assert result.score_rows[0]["judge_feedback"] == "Score: 7"
    assert result.aggregated_results == {"categorical_count": {"categorical_count": {"7": 5}}}

    # A registered judge scores with its own params; the numeric text averages.
    response = client.scoring.score(input_rows=ROWS[:2], scoring_functions={"config-judge": None})
    assert response.results["config-judge"].aggregated_results == {"average": {"average": 7.0}}


def test_bad_score_calls_are_4xx_and_a_failing_judge_is_a_502(client: LlamaStackClient) -> None:
    with pytest.raises(llama_stack_client.NotFoundError) as err:
        client.scoring.score(input_rows=ROWS, scoring_functions={"basic::nope": None})
    assert "scoring_function 'basic::nope' is not registered" in str(err.value)

    rows = [ROWS[0], {"generated_answer": "x"}]
    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score(input_rows=rows, scoring_functions={"basic::equality": None})
    expected = "input_rows[1]: scoring function 'basic::equality': the row has no column 'expected_answer'"
    assert expected in str(err.value)

    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score(
            input_rows=ROWS, scoring_functions={"llm-as-judge::base": judge_params(judge_model="nobody")}
        )
    assert err.value.body["error"]["param"] == "scoring_functions.llm-as-judge::base.judge_model"
    assert "Registered llm models: broken-judge, judge" in str(err.value)

    with pytest.raises(llama_stack_client.BadRequestError) as err:  # the base placeholder judges nothing
        client.scoring.score(input_rows=ROWS, scoring_functions={"llm-as-judge::base": None})
    assert "judge_model 'meta-llama/Llama-3.1-405B-Instruct' is not a registered model" in str(err.value)

    with pytest.raises(llama_stack_client.InternalServerError) as err:
        client.scoring.score(
            input_rows=ROWS,
            scoring_functions={"llm-as-judge::base": judge_params(judge_model="broken-judge")},
        )
    assert err.value.status_code == 502
    message = str(err.value)
    assert "provider 'llm-as-judge'" in message and "judge model 'broken-judge' failed on row" in message
    assert "provider 'fake'" in message

    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score(
            input_rows=[{"score": "x"}] * 2,
            scoring_functions={"llm-as-judge::base": judge_params(aggregation_functions=["average"])},
        )
    assert "needs column 'generated_answer'" in str(err.value)

    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score_batch(
            dataset_id="d", scoring_functions={"basic::equality": None}, save_results_dataset=False
        )
    assert "no datasetio provider is configured" in str(err.value)

    # The server keeps serving.
    response = client.scoring.score(input_rows=ROWS[:1], scoring_functions={"basic::equality": None})
    assert response.results["basic::equality"].score_rows == [{"score": 0.0}]
