"""Hook implementations: the inline::faiss Vector IO provider.

Imported whenever plugins load: it imports neither faiss nor numpy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::faiss"


@hookimpl
def lamina_vector_io_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.vector_io,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_faiss.config:FaissVectorIOConfig",
            factory="lamina_faiss.provider:create_provider",
            description=(
                "Vector DBs in the server's process: faiss (HNSW or exact flat, cosine) for vector search, "
                "SQLite FTS5 (BM25) for keyword search; chunks persisted in SQLite, the index on disk."
            ),
        )
    ]
