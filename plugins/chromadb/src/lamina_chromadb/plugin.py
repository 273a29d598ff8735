"""Hook implementations: the provider types this package offers."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec


@hookimpl
def lamina_vector_io_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.vector_io,
            provider_type="remote::chromadb",
            config_class="lamina_chromadb.config:ChromaVectorIOConfig",
            factory="lamina_chromadb.provider:create_provider",
            description="A Chroma server (1.x, v2 REST API): cosine HNSW search, keyword search ranked "
            "with BM25 over Chroma's full-text matches.",
        )
    ]
