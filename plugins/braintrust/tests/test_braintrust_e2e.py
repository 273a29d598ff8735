"""inline::braintrust through a real ``lamina run``: autoevals' client calls the server's own OpenAI routes.

The judge is the fake OpenAI upstream (``lamina.testing.fake_openai``) behind ``remote::vllm``: autoevals
reads its verdict from a forced tool call, and the fake answers a forced call with the arguments of the
last ``[[args:{...}]]`` directive in the prompt, so each row scripts the judge's verdict in its
generated answer. Embeddings come from the fake's ``embed`` model (4 dimensions, from the text's length).
No provider config names a URL: autoevals reaches the judge through this server's own /v1/openai/v1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e


def verdict(choice: str) -> str:
    return f'Paris [[args:{{"choice": "{choice}", "reasons": "scripted"}}]]'


ROWS = [
    {"input_query": "Capital of France?", "generated_answer": verdict("C"), "expected_answer": "Paris"},
    {"input_query": "Capital of France?", "generated_answer": verdict("D"), "expected_answer": "Lyon"},
    {"input_query": "Capital of France?", "generated_answer": verdict("B"), "expected_answer": "Paris"},
]


def run_config(fake: ServerProcess) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "braintrust-e2e",
        "apis": ["inference", "scoring"],
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "scoring": [
                {
                    "provider_id": "braintrust",
                    "provider_type": "inline::braintrust",
                    # Llama Stack's template line: an empty key is accepted (the judge is served here).
                    "config": {"openai_api_key": "", "judge_model": "judge", "embedding_model": "fake-embed"},
                },
                {"provider_id": "bt-broken", "provider_type": "inline::braintrust", "config": {}},
                {
                    "provider_id": "bt-500",
                    "provider_type": "inline::braintrust",
                    "config": {"judge_model": "broken-judge"},
                },
            ],
        },
        "models": [
            {"model_id": "judge", "provider_id": "fake", "provider_model_id": "ok"},
            {"model_id": "broken-judge", "provider_id": "fake", "provider_model_id": "error500"},
            {
                "model_id": "fake-embed",
                "provider_id": "fake",
                "provider_model_id": "embed",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 4},
            },
        ],
    }


@pytest.fixture
def client(start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess) -> LlamaStackClient:
    server = start_lamina(run_config(fake_upstream))
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)


def test_llama_stacks_nine_functions_are_registered(client: LlamaStackClient) -> None:
    fns = {f.identifier: f for f in client.scoring_functions.list() if f.provider_id == "braintrust"}
    assert sorted(fns) == [
        "braintrust::answer-correctness",
        "braintrust::answer-relevancy",
        "braintrust::answer-similarity",
        "braintrust::context-entity-recall",
        "braintrust::context-precision",
        "braintrust::context-recall",
        "braintrust::context-relevancy",
        "braintrust::factuality",
        "braintrust::faithfulness",
    ]
    assert fns["braintrust::factuality"].params.aggregation_functions == ["average"]


def test_factuality_is_judged_by_a_served_model(client: LlamaStackClient) -> None:
    response = client.scoring.score(input_rows=ROWS, scoring_functions={"braintrust::factuality": None})
    result = response.results["braintrust::factuality"]
    # autoevals' Factuality scores its choices A 0.4, B 0.6, C 1, D 0, E 1.
    assert [r["score"] for r in result.score_rows] == [1.0, 0.0, 0.6]
    assert result.score_rows[0]["metadata"]["choice"] == "C"
    assert result.score_rows[0]["metadata"]["rationale"] == "scripted"
    assert result.aggregated_results == {"average": {"average": pytest.approx(1.6 / 3)}}

    # Llama Stack's callers send their OpenAI key as provider data: accepted, not needed here.
    keyed = client.with_options(default_headers={"X-LlamaStack-Provider-Data": '{"openai_api_key": "sk-x"}'})
    response = keyed.scoring.score(input_rows=ROWS[:1], scoring_functions={"braintrust::factuality": None})
    assert response.results["braintrust::factuality"].score_rows[0]["score"] == 1.0


def test_answer_similarity_embeds_with_a_served_embedding_model(client: LlamaStackClient) -> None:
    rows = [
        {"input_query": "q", "generated_answer": "Paris", "expected_answer": "Paris"},
        {"input_query": "q", "generated_answer": "Paris", "expected_answer": "a much longer answer"},
    ]
    aggregations = ["accuracy", "median", "categorical_count", "average"]
    response = client.scoring.score(
        input_rows=rows,
        scoring_functions={
            "braintrust::answer-similarity": {"type": "basic", "aggregation_functions": aggregations}
        },
    )
    result = response.results["braintrust::answer-similarity"]
    scores = [r["score"] for r in result.score_rows]
    assert scores[0] == pytest.approx(1.0) and 0.0 <= scores[1] < 1.0
    assert len(result.aggregated_results) == 4  # Llama Stack's test_scoring_score_with_aggregation_functions


def test_judge_problems_are_clear_errors(client: LlamaStackClient) -> None:
    client.scoring_functions.register(
        scoring_fn_id="unjudged-factuality",
        provider_id="bt-broken",
        provider_scoring_fn_id="factuality",
        description="a provider with no judge_model",
        return_type={"type": "number"},
    )
    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score(input_rows=ROWS, scoring_functions={"unjudged-factuality": None})
    assert "set providers.scoring[bt-broken].config.judge_model" in str(err.value)

    client.scoring_functions.register(
        scoring_fn_id="failing-factuality",
        provider_id="bt-500",
        provider_scoring_fn_id="factuality",
        description="a judge whose upstream answers 500",
        return_type={"type": "number"},
    )
    with pytest.raises(llama_stack_client.InternalServerError) as err:
        client.scoring.score(input_rows=ROWS, scoring_functions={"failing-factuality": None})
    assert err.value.status_code == 502
    detail = err.value.body["detail"]
    assert detail.startswith("provider 'bt-500': scoring function 'failing-factuality': the judge's call")
    assert "(502): provider 'fake'" in detail  # the inference provider's own error, as Lamina answered it

    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring_functions.register(
            scoring_fn_id="nope",
            provider_id="braintrust",
            provider_scoring_fn_id="levenshtein",
            description="x",
            return_type={"type": "number"},
        )
    assert err.value.body["error"]["param"] == "provider_scoring_fn_id"

    rows = [{"input_query": "q", "generated_answer": verdict("Z"), "expected_answer": "x"}]
    with pytest.raises(llama_stack_client.InternalServerError) as err:
        client.scoring.score(input_rows=rows, scoring_functions={"braintrust::factuality": None})
    assert err.value.status_code == 502
    assert "provider 'braintrust'" in str(err.value) and "not what autoevals expects" in str(err.value)

    with pytest.raises(llama_stack_client.BadRequestError) as err:
        client.scoring.score(
            input_rows=[{"generated_answer": "x"}], scoring_functions={"braintrust::factuality": None}
        )
    assert "input_rows[0]" in str(err.value) and "no column 'input_query'" in str(err.value)

    # The server keeps serving.
    response = client.scoring.score(input_rows=ROWS[:1], scoring_functions={"braintrust::factuality": None})
    assert response.results["braintrust::factuality"].score_rows[0]["score"] == 1.0
