"""Hook implementations: the inline::huggingface post-training provider.

Imported whenever plugins load: it imports nothing heavy (torch, transformers, peft and trl load in the
training thread, when a job runs).
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::huggingface"


@hookimpl
def lamina_post_training_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.post_training,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_post_training_huggingface.config:HuggingFacePostTrainingConfig",
            factory="lamina_post_training_huggingface.provider:create_provider",
            api_dependencies=[Api.datasetio],
            # Inference's model table: a registered model's local files are a model to train.
            optional_api_dependencies=[Api.inference],
            description=(
                "Supervised fine-tuning (full or LoRA) and DPO on transformers, peft and trl, as resumable "
                "jobs trained in a thread; checkpoints are Hugging Face / PEFT directories."
            ),
        )
    ]
