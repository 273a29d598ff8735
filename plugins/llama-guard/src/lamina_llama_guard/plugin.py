"""Hook implementations: the inline::llama-guard safety provider.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::llama-guard"


@hookimpl
def lamina_safety_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.safety,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_llama_guard.config:LlamaGuardConfig",
            factory="lamina_llama_guard.provider:create_provider",
            api_dependencies=[Api.inference],
            description=(
                "Shields judged by a Llama Guard model (1, 2, 3 or 4; or a general instruct model with "
                "constrained_output) served by any inference provider; also backs OpenAI moderations."
            ),
        )
    ]
