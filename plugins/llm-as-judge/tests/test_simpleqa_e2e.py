"""llm-as-judge::405b-simpleqa through a real ``lamina run``, driven by llama-stack-client 0.2.12.

The judge is the fake OpenAI upstream (``lamina.testing.fake_openai``) behind ``remote::vllm``: its
``guard`` model answers the last ``[[guard:<answer>]]`` directive of the prompt, and the grader prompt
ends with the row's generated answer, so each row scripts its judge's letter; its ``echo`` model answers
with the request it got, which shows the prompt the judge was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess
from lamina_llm_as_judge import simpleqa

pytestmark = pytest.mark.e2e

FN = "llm-as-judge::405b-simpleqa"


def row(question: str, expected: str, answer: str, letter: str) -> dict[str, str]:
    """A row whose generated answer scripts the judge's letter (the fake's ``guard`` directive)."""
    generated = f"{answer} [[guard:{letter}]]"
    return {"input_query": question, "expected_answer": expected, "generated_answer": generated}


ROWS = [
    row("Capital of Peru?", "Lima", "Lima", "A"),
    row("Author of Dracula?", "Bram Stoker", "Poe", "B"),
    row("Year of the Moon landing?", "1969", "?", "C"),
    row("Largest ocean?", "Pacific", "Pacific", "A"),
]


def run_config(fake: ServerProcess) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "simpleqa-e2e",
        "apis": ["inference", "scoring"],
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "scoring": [
                {"provider_id": "llm-as-judge", "provider_type": "inline::llm-as-judge", "config": {}}
            ],
        },
        "models": [
            {"model_id": "judge", "provider_id": "fake", "provider_model_id": "guard"},
            {"model_id": "echo-judge", "provider_id": "fake", "provider_model_id": "echo"},
        ],
    }


@pytest.fixture
def client(start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess) -> LlamaStackClient:
    server = start_lamina(run_config(fake_upstream))
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def test_simpleqa_is_listed_as_llama_stack_lists_it(client: LlamaStackClient) -> None:
    fn = client.scoring_functions.retrieve(FN)
    assert fn.provider_id == "llm-as-judge"
    assert fn.provider_resource_id == "llm-as-judge-405b-simpleqa"
    assert fn.description.startswith("Llm As Judge Scoring Function for SimpleQA Benchmark")
    assert fn.return_type.type == "number"
    assert fn.params.type == "llm_as_judge"
    assert fn.params.judge_model == "meta-llama/Llama-3.1-405B-Instruct"
    assert fn.params.judge_score_regexes == ["(A|B|C)"]
    assert fn.params.aggregation_functions == ["categorical_count"]
    assert fn.params.prompt_template == simpleqa.GRADER_PROMPT
    assert FN in [f.identifier for f in client.scoring_functions.list()]


def test_a_judge_named_in_the_calls_params_grades_each_row(client: LlamaStackClient) -> None:
    params = {"type": "llm_as_judge", "judge_model": "judge", "aggregation_functions": ["categorical_count"]}
    response = client.scoring.score(input_rows=ROWS, scoring_functions={FN: params})
    result = response.results[FN]
    assert [r["score"] for r in result.score_rows] == ["A", "B", "C", "A"]
    assert [r["judge_feedback"] for r in result.score_rows] == ["A", "B", "C", "A"]
    assert result.aggregated_results == {"categorical_count": {"categorical_count": {"A": 2, "B": 1, "C": 1}}}

    # The judge got the function's grader prompt, filled from the row.
    response = client.scoring.score(
        input_rows=ROWS[:1], scoring_functions={FN: {"type": "llm_as_judge", "judge_model": "echo-judge"}}
    )
    sent = json.loads(response.results[FN].score_rows[0]["judge_feedback"])
    assert sent["messages"][-1]["content"] == simpleqa.GRADER_PROMPT.format(**ROWS[0])


def test_the_default_judge_unregistered_is_a_400_naming_judge_model(client: LlamaStackClient) -> None:
    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score(input_rows=ROWS, scoring_functions={FN: None})
    assert err.value.body["error"]["param"] == f"scoring_functions.{FN}.judge_model"
    message = str(err.value)
    assert "judge_model 'meta-llama/Llama-3.1-405B-Instruct' is not a registered model" in message
    assert f"{{{FN}: {{type: llm_as_judge, judge_model: <model id>}}}}" in message  # how to name one
    assert "Registered llm models: echo-judge, judge" in message

    # Registering a model under the default's id (as Llama Stack's SimpleQA notebook does) is the other
    # way: then the function's own params judge, with their categorical_count.
    client.models.register(
        model_id="meta-llama/Llama-3.1-405B-Instruct", provider_id="fake", provider_model_id="guard"
    )
    result = client.scoring.score(input_rows=ROWS, scoring_functions={FN: None}).results[FN]
    assert [r["score"] for r in result.score_rows] == ["A", "B", "C", "A"]
    assert result.aggregated_results == {"categorical_count": {"categorical_count": {"A": 2, "B": 1, "C": 1}}}


def test_the_base_functions_placeholder_prompt_is_never_sent_to_a_judge(client: LlamaStackClient) -> None:
    # A call naming only its judge keeps the function's prompt; llm-as-judge::base has none of its own.
    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score(
            input_rows=ROWS,
            scoring_functions={"llm-as-judge::base": {"type": "llm_as_judge", "judge_model": "echo-judge"}},
        )
    assert err.value.body["error"]["param"] == "scoring_functions.llm-as-judge::base.prompt_template"
    assert "send the judge prompt as prompt_template in the call's params" in str(err.value)
