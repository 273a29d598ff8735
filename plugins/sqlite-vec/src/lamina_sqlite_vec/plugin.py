"""Hook implementations: the inline::sqlite-vec Vector IO provider.

Imported whenever plugins load: it imports neither apsw nor sqlite-vec and opens no file.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

_PKG = "lamina_sqlite_vec"
PROVIDER_TYPE = "inline::sqlite-vec"


@hookimpl
def lamina_vector_io_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.vector_io,
            provider_type=PROVIDER_TYPE,
            config_class=f"{_PKG}.config:SQLiteVectorIOConfig",
            factory=f"{_PKG}.provider:create_provider",
            description=(
                "Vector DBs in one local SQLite file: cosine vector search with sqlite-vec (vec0, exact) "
                "and keyword search with FTS5 (BM25)."
            ),
        )
    ]
