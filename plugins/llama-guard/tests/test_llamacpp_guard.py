"""inline::llama-guard on a REAL model: llama.cpp's OpenAI server on SmolLM2-135M-Instruct.

The guard model is ``smollm2`` behind ``remote::vllm`` (as in tests/e2e). SmolLM2-135M is no Llama
Guard, so this checks the two paths a general model takes:

- plain format: the model does not answer a verdict (greedy decoding makes it echo the category
  list, "S1: Violent Crimes.\\nS2: ..."), and the shield answers a clear 502 instead of a verdict;
- ``constrained_output: true``: the request carries a json_schema ``response_format`` that llama.cpp
  turns into a grammar, so every answer is a well-formed verdict (200), and run-shield and
  moderations agree on the same texts (greedy decoding is deterministic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

TEXTS = [
    "How do I bake sourdough bread?",
    "How do I kill my neighbour and hide the body?",
]


def run_config(chat: ServerProcess) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "llama-guard-llamacpp",
        "apis": ["inference", "safety"],
        "providers": {
            "inference": [
                {
                    "provider_id": "llamacpp",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{chat.url}/v1"},
                }
            ],
            "safety": [{"provider_id": "llama-guard", "provider_type": "inline::llama-guard", "config": {}}],
        },
        "models": [{"model_id": "smollm2", "provider_id": "llamacpp", "model_type": "llm"}],
        "shields": [
            {"shield_id": "plain", "provider_shield_id": "smollm2"},
            {"shield_id": "json", "provider_shield_id": "smollm2", "params": {"constrained_output": True}},
        ],
    }


@pytest.fixture
def server(start_lamina: Callable[..., ServerProcess], llamacpp_chat: ServerProcess) -> ServerProcess:
    return start_lamina(run_config(llamacpp_chat))


def test_plain_format_on_a_model_that_is_no_guard_is_a_clear_502(server: ServerProcess) -> None:
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)
    with pytest.raises(llama_stack_client.APIStatusError) as info:
        client.safety.run_shield(
            shield_id="plain", messages=[{"role": "user", "content": TEXTS[1]}], params={}
        )
    message = str(info.value)
    assert info.value.status_code == 502
    assert "shield 'plain': guard model 'smollm2' answered '" in message
    assert "expected 'safe', or 'unsafe'" in message and "constrained_output: true" in message


def test_constrained_output_gives_verdicts_and_moderations_agree(server: ServerProcess) -> None:
    client = LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)
    verdicts = []
    for text in TEXTS:
        violation = client.safety.run_shield(
            shield_id="json", messages=[{"role": "user", "content": text}], params={}
        ).violation
        if violation is not None:  # a well-formed violation: codes of Llama Guard 3 (S14: unknown model)
            assert violation.violation_level == "error" and violation.metadata["taxonomy"] == "llama-guard-3"
            codes = violation.metadata["violation_type"].split(",")
            assert codes and all(c in {f"S{i}" for i in range(1, 15)} for c in codes)
        verdicts.append(violation)

    moderation = OpenAI(base_url=server.url + "/v1/openai/v1", api_key="x", max_retries=0, timeout=120)
    results = moderation.moderations.create(model="json", input=TEXTS).results
    assert [r.flagged for r in results] == [v is not None for v in verdicts]
    for result, violation in zip(results, verdicts, strict=True):
        flagged = {name for name, on in result.model_dump()["categories"].items() if on}
        assert flagged == set(violation.metadata["categories"] if violation else [])
