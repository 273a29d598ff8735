"""One real ``lamina run`` process for the end-to-end tests, routing to real upstreams.

- provider ``llamacpp``: llama.cpp's OpenAI server on the bundled SmolLM2 (remote::vllm)
- provider ``llamacpp-embed``: the same model in embedding mode (remote::vllm)
- provider ``faulty``: the fake upstream, used only to inject faults (remote::vllm, 1 s timeout)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess, lamina_server

FAULT_MODELS = ["ok", "slow", "error500", "badjson", "cut", "stall", "echo", "embed"]


def e2e_run_config(chat: ServerProcess, embed: ServerProcess, fake: ServerProcess) -> dict:
    return {
        "version": 2,
        "image_name": "e2e",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {
                    "provider_id": "llamacpp",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{chat.url}/v1", "max_tokens": 64},
                },
                {
                    "provider_id": "llamacpp-embed",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{embed.url}/v1"},
                },
                {
                    "provider_id": "faulty",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "timeout": 1.0, "max_tokens": 16},
                },
            ]
        },
        "models": [
            {"model_id": "smollm2", "provider_id": "llamacpp", "model_type": "llm"},
            {
                "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
                "provider_id": "llamacpp",
                "provider_model_id": "smollm2",
            },
            {
                "model_id": "smollm2-embed",
                "provider_id": "llamacpp-embed",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 576},
            },
            *(
                {
                    "model_id": f"fault/{m}",
                    "provider_id": "faulty",
                    "provider_model_id": m,
                    **(
                        {"model_type": "embedding", "metadata": {"embedding_dimension": 4}}
                        if m == "embed"
                        else {}
                    ),
                }
                for m in FAULT_MODELS
            ),
        ],
    }


@pytest.fixture(scope="session")
def lamina(
    llamacpp_chat: ServerProcess,
    llamacpp_embed: ServerProcess,
    fake_upstream: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    work: Path = tmp_path_factory.mktemp("e2e")
    with lamina_server(e2e_run_config(llamacpp_chat, llamacpp_embed, fake_upstream), work) as server:
        yield server


@pytest.fixture
def ls_client(lamina: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=lamina.url, max_retries=0, timeout=60)


@pytest.fixture
def oa_client(lamina: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{lamina.url}/v1/openai/v1", api_key="none", max_retries=0, timeout=60)


@pytest.fixture
def oa_client_v1(lamina: ServerProcess) -> OpenAI:
    """The newer convention: base_url=<server>/v1."""
    return OpenAI(base_url=f"{lamina.url}/v1", api_key="none", max_retries=0, timeout=60)
