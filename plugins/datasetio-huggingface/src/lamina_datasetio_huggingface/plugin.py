"""Hook implementation: the remote::huggingface datasetio provider. Imports nothing heavy."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

_PKG = "lamina_datasetio_huggingface"


@hookimpl
def lamina_datasetio_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.datasetio,
            provider_type="remote::huggingface",
            config_class=f"{_PKG}.config:HuggingfaceDatasetIOConfig",
            factory=f"{_PKG}.provider:create_provider",
            description=(
                "Datasets loaded with the Hugging Face datasets library from huggingface:// URIs: local "
                "builders (csv, json, parquet with data_files) and dataset directories offline, hub "
                "datasets when the hub answers; pages sliced from the Arrow cache; appended rows kept in "
                "a KV store."
            ),
        )
    ]
