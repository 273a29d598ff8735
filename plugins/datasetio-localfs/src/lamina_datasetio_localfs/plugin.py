"""Hook implementation: the inline::localfs datasetio provider. Imports nothing heavy."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

_PKG = "lamina_datasetio_localfs"


@hookimpl
def lamina_datasetio_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.datasetio,
            provider_type="inline::localfs",
            config_class=f"{_PKG}.config:LocalFSDatasetIOConfig",
            factory=f"{_PKG}.provider:create_provider",
            # A Files API file is a dataset source (files://<file_id>) when a files provider is configured.
            optional_api_dependencies=[Api.files],
            description=(
                "Dataset rows from CSV, TSV, JSONL, Parquet and XLSX files (local paths, file://, data: "
                "URIs, Files API files as files://<file_id>) or given inline, read a page at a time; "
                "appended rows kept in a KV store (SQLite or PostgreSQL)."
            ),
        )
    ]
