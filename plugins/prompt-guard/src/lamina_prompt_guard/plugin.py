"""Hook implementations: the inline::prompt-guard safety provider.

Imported whenever plugins load: it imports neither jailguard nor the provider, and starts nothing.
No default shield is contributed: register one (run.yaml ``shields:`` or ``POST /v1/shields``) with
provider_shield_id ``Prompt-Guard-86M`` (Llama Stack's name) or ``jailguard``.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

_PKG = "lamina_prompt_guard"
PROVIDER_TYPE = "inline::prompt-guard"


@hookimpl
def lamina_safety_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.safety,
            provider_type=PROVIDER_TYPE,
            config_class=f"{_PKG}.config:PromptGuardConfig",
            factory=f"{_PKG}.provider:create_provider",
            description=(
                "Prompt-injection and jailbreak detection with the jailguard classifier (MiniLM embeddings "
                "and a small MLP) in a worker process; no PyTorch, nothing downloaded at run time."
            ),
        )
    ]
