"""inline::llm-as-judge against the Scoring conformance kit (a real `lamina run`, llama-stack-client).

The judge is the fake upstream's scripted ``guard`` model behind ``remote::vllm``: it answers the
``[[guard:...]]`` directive of the prompt ("Score: 4" here), a deterministic judge.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.conformance import ScoringConformance
from lamina.testing.processes import ServerProcess, lamina_server


def run_config(fake: ServerProcess) -> dict:
    return {
        "version": 2,
        "image_name": "llm-as-judge-conformance",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "scoring": [
                {"provider_id": "llm-as-judge", "provider_type": "inline::llm-as-judge", "config": {}}
            ],
        },
        "models": [{"model_id": "judge", "provider_id": "fake", "provider_model_id": "guard"}],
    }


class TestLlmAsJudge(ScoringConformance):
    provider_id = "llm-as-judge"
    function = "llm-as-judge::base"
    rows = [
        {"input_query": "2+2?", "generated_answer": "4", "expected_answer": "4"},
        {"input_query": "3+3?", "generated_answer": "7", "expected_answer": "6"},
    ]
    needed_column = "generated_answer"
    params = {
        "type": "llm_as_judge",
        "judge_model": "judge",
        "prompt_template": "Q: {input_query} A: {generated_answer} [[guard:Score: 4]]",
        "judge_score_regexes": [r"Score: (\d+)"],
    }
    wrong_params = {"type": "basic"}

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
    ) -> Iterator[ServerProcess]:
        with lamina_server(run_config(fake_upstream), tmp_path_factory.mktemp("judge-conformance")) as server:
            yield server
