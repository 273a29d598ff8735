"""Hook implementations: the inline::reference synthetic data generation provider.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::reference"


@hookimpl
def lamina_synthetic_data_generation_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.synthetic_data_generation,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_synthetic_data_generation.config:ReferenceSyntheticDataGenerationConfig",
            factory="lamina_synthetic_data_generation.provider:create_provider",
            api_dependencies=[Api.inference, Api.scoring],
            optional_api_dependencies=[Api.datasetio],  # saving the kept rows as a dataset
            description=(
                "Candidate answers from a served model, scored by the Scoring API's llm-as-judge and "
                "filtered (none, random, top_k, top_p, top_k_top_p, sigmoid); the kept rows can be saved "
                "as a post-training dataset. Large generations run as resumable jobs."
            ),
        )
    ]
