"""Hook implementations: the provider type this package offers."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type="remote::ollama",
            config_class="lamina_ollama.config:OllamaImplConfig",
            factory="lamina_ollama.provider:create_provider",
            description="An Ollama server, through its native API (/api/chat, /api/generate, /api/embed).",
        )
    ]
