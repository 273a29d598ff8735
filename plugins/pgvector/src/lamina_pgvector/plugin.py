"""Hook implementations: the remote::pgvector provider type (no I/O, no heavy imports)."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

_PKG = "lamina_pgvector"
PROVIDER_TYPE = "remote::pgvector"


@hookimpl
def lamina_vector_io_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.vector_io,
            provider_type=PROVIDER_TYPE,
            config_class=f"{_PKG}.config:PGVectorVectorIOConfig",
            factory=f"{_PKG}.provider:create_provider",
            description=(
                "PostgreSQL with the pgvector extension: one table per vector DB, HNSW cosine search "
                "and PostgreSQL full text search (ts_rank_cd)."
            ),
        )
    ]
