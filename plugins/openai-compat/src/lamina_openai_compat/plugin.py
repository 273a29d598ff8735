"""Hook implementations: the provider types this package offers."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

_PKG = "lamina_openai_compat"

# provider type -> (config class, description)
_PROVIDERS = {
    "remote::vllm": (
        "VLLMInferenceAdapterConfig",
        "A vLLM server (or any OpenAI-compatible server such as llama.cpp).",
    ),
    "remote::openai": ("OpenAIConfig", "OpenAI's API."),
    "remote::together": ("TogetherImplConfig", "Together AI."),
    "remote::fireworks": ("FireworksImplConfig", "Fireworks AI."),
    "remote::groq": ("GroqConfig", "Groq."),
    "remote::nvidia": ("NVIDIAConfig", "NVIDIA NIM and the NVIDIA API catalog."),
    "remote::tgi": ("TGIImplConfig", "Hugging Face Text Generation Inference (its OpenAI routes)."),
}


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type=provider_type,
            config_class=f"{_PKG}.config:{config_class}",
            factory=f"{_PKG}.provider:create_provider",
            provider_data_validator=f"{_PKG}.provider:ProviderData",
            description=description,
        )
        for provider_type, (config_class, description) in _PROVIDERS.items()
    ]
