"""Hook implementations: the provider types this package offers."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

_PKG = "lamina_openai_compat"

# provider type -> (config class, X-LlamaStack-Provider-Data validator, description); classes in .config
_PROVIDERS = {
    "remote::vllm": (
        "VLLMInferenceAdapterConfig",
        "VLLMProviderDataValidator",
        "A vLLM server (or any OpenAI-compatible server such as llama.cpp).",
    ),
    "remote::openai": ("OpenAIConfig", "OpenAIProviderDataValidator", "OpenAI's API."),
    "remote::together": ("TogetherImplConfig", "TogetherProviderDataValidator", "Together AI."),
    "remote::fireworks": ("FireworksImplConfig", "FireworksProviderDataValidator", "Fireworks AI."),
    "remote::groq": ("GroqConfig", "GroqProviderDataValidator", "Groq."),
    "remote::nvidia": (
        "NVIDIAConfig",
        "NVIDIAProviderDataValidator",
        "NVIDIA NIM and the NVIDIA API catalog.",
    ),
    "remote::tgi": (
        "TGIImplConfig",
        "TGIProviderDataValidator",
        "Hugging Face Text Generation Inference (its OpenAI routes).",
    ),
}


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type=provider_type,
            config_class=f"{_PKG}.config:{config_class}",
            factory=f"{_PKG}.provider:create_provider",
            provider_data_validator=f"{_PKG}.config:{validator}",
            description=description,
        )
        for provider_type, (config_class, validator, description) in _PROVIDERS.items()
    ]
