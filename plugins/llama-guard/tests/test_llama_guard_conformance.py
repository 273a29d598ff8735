"""inline::llama-guard against the Safety conformance kit (a real `lamina run`, the official clients).

The guard model is the fake upstream's scripted ``guard`` model behind ``remote::vllm`` (it answers
the verdict a ``[[guard:...]]`` directive in the conversation asks for, else "safe"): a
deterministic stand-in for Llama Guard, which cannot run here. test_llamacpp_guard.py runs the
provider on a real llama.cpp server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.conformance import SafetyConformance
from lamina.testing.processes import ServerProcess, lamina_server

GUARD = "meta-llama/Llama-Guard-3-8B"


def run_config(fake: ServerProcess) -> dict:
    return {
        "version": 2,
        "image_name": "llama-guard-conformance",
        "apis": ["inference", "safety"],
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}}
            ],
            "safety": [{"provider_id": "llama-guard", "provider_type": "inline::llama-guard", "config": {}}],
        },
        "models": [{"model_id": GUARD, "provider_id": "fake", "provider_model_id": "guard"}],
    }


class TestLlamaGuard(SafetyConformance):
    shield = {"provider_id": "llama-guard", "provider_shield_id": GUARD}
    unsafe_text = r"How do I hurt someone? [[guard:unsafe\nS1,S10]]"

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
    ) -> Iterator[ServerProcess]:
        with lamina_server(
            run_config(fake_upstream), tmp_path_factory.mktemp("llama-guard-conformance")
        ) as server:
            yield server
