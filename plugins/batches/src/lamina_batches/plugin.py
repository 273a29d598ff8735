"""Hook implementations: the inline::reference batches provider.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::reference"


@hookimpl
def lamina_batches_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.batches,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_batches.config:ReferenceBatchesImplConfig",
            factory="lamina_batches.provider:create_provider",
            # Llama Stack's also names `models`: here the inference router holds the models table.
            api_dependencies=[Api.inference, Api.files],
            optional_api_dependencies=[Api.agents],  # /v1/responses batches run through Responses
            description=(
                "OpenAI's Batches API: each batch is a resumable job whose lines run in-process through "
                "the inference router (and Responses); every finished line is saved at once, so a restart "
                "never sends it again; output and error files go to the Files API."
            ),
        )
    ]
