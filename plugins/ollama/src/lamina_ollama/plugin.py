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
            # The provider registers the models the Ollama server has; it reaches the models
            # table through the inference router (its own API), so this is not a start-up order.
            optional_api_dependencies=[Api.inference],
            description="An Ollama server, through its native API (/api/chat, /api/generate, /api/embed).",
        )
    ]
