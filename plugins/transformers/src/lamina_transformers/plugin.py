"""Hook implementations: the inline::transformers inference provider.

Imported whenever plugins load: it imports nothing heavy (torch and transformers load when a model does).
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::transformers"


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_transformers.config:TransformersInferenceConfig",
            factory="lamina_transformers.provider:create_provider",
            description=(
                "A local Hugging Face checkpoint directory (a full model, or a PEFT LoRA adapter naming its "
                "base), run in-process by transformers on torch: chat and completion, streamed or not."
            ),
        )
    ]
