"""remote::vllm (and so every OpenAI-compatible provider type) against llama.cpp's real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.conformance import InferenceConformance
from lamina.testing.processes import ServerProcess, lamina_server


class TestVLLMProviderOnLlamaCpp(InferenceConformance):
    chat_model = "smollm2"
    embedding_model = "smollm2-embed"
    embedding_dimension = 576

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls,
        llamacpp_chat: ServerProcess,
        llamacpp_embed: ServerProcess,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[ServerProcess]:
        config = {
            "version": 2,
            "image_name": "conformance",
            "providers": {
                "inference": [
                    {
                        "provider_id": "chat",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{llamacpp_chat.url}/v1"},
                    },
                    {
                        "provider_id": "embed",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{llamacpp_embed.url}/v1"},
                    },
                ]
            },
            "models": [
                {"model_id": "smollm2", "provider_id": "chat"},
                {
                    "model_id": "smollm2-embed",
                    "provider_id": "embed",
                    "model_type": "embedding",
                    "metadata": {"embedding_dimension": 576},
                },
            ],
        }
        with lamina_server(config, tmp_path_factory.mktemp("conformance")) as server:
            yield server


class TestOpenAIProviderTypeOnLlamaCpp(InferenceConformance):
    """remote::openai with base_url: the same wire, the provider type users pick for OpenAI itself."""

    chat_model = "gpt-local"

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, llamacpp_chat: ServerProcess, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        config = {
            "version": 2,
            "image_name": "conformance-openai",
            "providers": {
                "inference": [
                    {
                        "provider_id": "openai",
                        "provider_type": "remote::openai",
                        "config": {"api_key": "sk-test", "base_url": f"{llamacpp_chat.url}/v1"},
                    },
                ]
            },
            "models": [{"model_id": "gpt-local", "provider_id": "openai", "provider_model_id": "smollm2"}],
        }
        with lamina_server(config, tmp_path_factory.mktemp("conformance-openai")) as server:
            yield server
