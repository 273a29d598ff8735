"""inline::braintrust against the Scoring conformance kit (a real `lamina run`, llama-stack-client).

The judge is the fake upstream behind ``remote::vllm``; autoevals reads its verdict from a forced tool
call, which the fake answers with the ``[[args:...]]`` directive of the prompt (choice C here).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.conformance import ScoringConformance
from lamina.testing.processes import ServerProcess, lamina_server


def run_config(fake: ServerProcess) -> dict:
    return {
        "version": 2,
        "image_name": "braintrust-conformance",
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "scoring": [
                {
                    "provider_id": "braintrust",
                    "provider_type": "inline::braintrust",
                    "config": {"judge_model": "judge"},
                }
            ],
        },
        "models": [{"model_id": "judge", "provider_id": "fake", "provider_model_id": "ok"}],
    }


VERDICT = '[[args:{"choice": "C", "reasons": "same"}]]'


class TestFactuality(ScoringConformance):
    provider_id = "braintrust"
    function = "braintrust::factuality"
    rows = [
        {"input_query": f"{land}?", "generated_answer": f"{city} {VERDICT}", "expected_answer": city}
        for land, city in (("France", "Paris"), ("Italy", "Rome"))
    ]
    needed_column = "input_query"

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
    ) -> Iterator[ServerProcess]:
        with lamina_server(run_config(fake_upstream), tmp_path_factory.mktemp("bt-conformance")) as server:
            yield server
