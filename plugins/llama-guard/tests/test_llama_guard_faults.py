"""Faults of the guard model's inference provider, through a real `lamina run` and llama-stack-client.

The upstreams are the fake OpenAI server (``fake_upstream``: its ``error500`` and ``slow`` models
fail on purpose, which no real server does on demand) and a port nothing listens on (a provider
that is down). A shield never answers "safe" when its guard could not judge: each fault is a
502/504 naming the inference provider, and the server keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_stack_client import APIStatusError, LlamaStackClient
from openai import APIStatusError as OpenAIStatusError
from openai import OpenAI

from lamina.testing.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e


def run_config(fake: ServerProcess, dead_url: str) -> dict:
    vllm = "remote::vllm"
    return {
        "version": 2,
        "image_name": "llama-guard-faults",
        "apis": ["inference", "safety"],
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": vllm,
                    "config": {"url": f"{fake.url}/v1", "timeout": 1.0},
                },
                {"provider_id": "dead", "provider_type": vllm, "config": {"url": dead_url, "timeout": 1.0}},
            ],
            "safety": [{"provider_id": "llama-guard", "provider_type": "inline::llama-guard", "config": {}}],
        },
        "models": [
            {"model_id": "guard", "provider_id": "fake", "provider_model_id": "guard"},
            {"model_id": "guard-500", "provider_id": "fake", "provider_model_id": "error500"},
            {"model_id": "guard-slow", "provider_id": "fake", "provider_model_id": "slow"},
            {"model_id": "guard-down", "provider_id": "dead", "provider_model_id": "guard"},
        ],
        "shields": [
            {"shield_id": name, "provider_id": "llama-guard", "provider_shield_id": name}
            for name in ("guard", "guard-500", "guard-slow", "guard-down")
        ],
    }


@pytest.fixture
def server(start_lamina: Callable[..., ServerProcess], fake_upstream: ServerProcess) -> ServerProcess:
    return start_lamina(run_config(fake_upstream, f"http://127.0.0.1:{free_port()}/v1"))


@pytest.mark.parametrize(
    ("shield", "status", "provider"),
    [("guard-500", 502, "fake"), ("guard-slow", 504, "fake"), ("guard-down", 502, "dead")],
)
def test_a_failing_guard_model_is_an_error_naming_its_provider(
    server: ServerProcess, shield: str, status: int, provider: str
) -> None:
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "Is this safe?"}]
    with pytest.raises(APIStatusError) as info:
        ls.safety.run_shield(shield_id=shield, messages=messages, params={})
    assert info.value.status_code == status
    assert f"provider '{provider}'" in str(info.value)
    oa = OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=30)
    with pytest.raises(OpenAIStatusError) as moderation:
        oa.moderations.create(model=shield, input="Is this safe?")
    assert moderation.value.status_code == status
    # The server keeps serving: the healthy guard still judges.
    assert ls.safety.run_shield(shield_id="guard", messages=messages, params={}).violation is None
