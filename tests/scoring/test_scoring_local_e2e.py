"""Scoring in the local distribution (`lamina run` with no argument): basic functions and an LLM judge
on the bundled SmolLM2, offline."""

from __future__ import annotations

import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

ROWS = [
    {"input_query": "Capital of France?", "generated_answer": "Paris", "expected_answer": "Paris"},
    {"input_query": "What is 2 + 2?", "generated_answer": "5", "expected_answer": "4"},
]


def test_basic_functions_and_a_judge_on_the_bundled_model(local_lamina: ServerProcess) -> None:
    client = LlamaStackClient(base_url=local_lamina.url, max_retries=0, timeout=300)
    ids = {f.identifier: f.provider_id for f in client.scoring_functions.list()}
    assert ids["basic::equality"] == "basic" and ids["llm-as-judge::base"] == "llm-as-judge"

    response = client.scoring.score(input_rows=ROWS, scoring_functions={"basic::equality": None})
    assert response.results["basic::equality"].aggregated_results["accuracy"]["accuracy"] == 0.5

    judge = {
        "type": "llm_as_judge",
        "judge_model": "SmolLM2-135M-Instruct",
        "prompt_template": "Question: {input_query}\nExpected: {expected_answer}\n"
        "Answer: {generated_answer}\nIs the answer correct? Reply 'Score: 1' if it is, 'Score: 0' if not.",
        "judge_score_regexes": [r"Score:\s*(\d)"],
        "aggregation_functions": ["categorical_count"],
    }
    response = client.scoring.score(input_rows=ROWS, scoring_functions={"llm-as-judge::base": judge})
    result = response.results["llm-as-judge::base"]
    # SmolLM2 is a weak judge: what it answers varies; that it answered every row through the local
    # model, and the aggregation counted them, does not.
    assert len(result.score_rows) == 2 and all(r["judge_feedback"] for r in result.score_rows)
    assert sum(result.aggregated_results["categorical_count"]["categorical_count"].values()) == 2
