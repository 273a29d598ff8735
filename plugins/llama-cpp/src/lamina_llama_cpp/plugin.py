"""Hook implementations: the ``inline::llama-cpp`` provider and its bundled default model."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType

PROVIDER_TYPE = "inline::llama-cpp"
DEFAULT_MODEL = "SmolLM2-135M-Instruct"


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_llama_cpp.config:LlamaCppConfig",
            factory="lamina_llama_cpp.provider:create_provider",
            description=(
                "Any GGUF model run in-process by llama.cpp: chat, completion, tools, JSON schema, "
                "embeddings."
            ),
        )
    ]


@hookimpl
def lamina_models() -> list[DefaultResource]:
    return [
        DefaultResource(
            type=ResourceType.model,
            provider_type=PROVIDER_TYPE,
            identifier=DEFAULT_MODEL,
            provider_resource_id=DEFAULT_MODEL,
            params={
                "model_type": "llm",
                "metadata": {
                    "bundled_in": "lamina-model-smollm2",
                    "quantization": "Q4_1",
                    "context_length": 8192,
                },
            },
        )
    ]
