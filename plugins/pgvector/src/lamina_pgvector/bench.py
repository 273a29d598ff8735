"""Open the provider outside a server, for benchmarks (and tests).

::

    from lamina_pgvector import open_for_bench

    async with open_for_bench("postgresql://postgres@127.0.0.1:5432/postgres", 384) as (provider, vdb):
        await provider.insert_chunks(vdb, chunks)  # chunks with chunk_id and embedding set
        response = await provider.query_chunks(vdb, ChunkQuery(mode="vector", k=10, embedding=vector))
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lamina.apis.vector_io import VectorDB
from lamina.providers.base import ProviderContext
from lamina.specs import Api
from lamina_pgvector.config import PGVectorVectorIOConfig
from lamina_pgvector.provider import PGVectorVectorIOProvider


def make_provider(config: PGVectorVectorIOConfig, provider_id: str = "pgvector") -> PGVectorVectorIOProvider:
    """A provider object (not initialized) as the server would build it."""
    context = ProviderContext(
        api=Api.vector_io,
        provider_id=provider_id,
        provider_type="remote::pgvector",
        state_dir=Path(tempfile.gettempdir()),
    )
    return PGVectorVectorIOProvider(config, context)


def make_vector_db(
    vector_db_id: str, dimension: int, provider_id: str = "pgvector", embedding_model: str = "bench-embedder"
) -> VectorDB:
    return VectorDB(
        identifier=vector_db_id,
        provider_resource_id=vector_db_id,
        provider_id=provider_id,
        embedding_model=embedding_model,
        embedding_dimension=dimension,
    )


@asynccontextmanager
async def open_for_bench(
    dsn: str,
    dimension: int,
    *,
    vector_db_id: str = "bench",
    fresh: bool = True,
    provider_id: str = "pgvector-bench",
    **config: Any,
) -> AsyncIterator[tuple[PGVectorVectorIOProvider, VectorDB]]:
    """An initialized provider on ``dsn`` and a registered vector DB of ``dimension`` dimensions.

    ``fresh`` (default) drops the vector DB's table first, so each run starts empty; ``fresh=False``
    reopens what an earlier run stored (persistence, query-only runs). ``config`` overrides config
    fields (``pool_max_size``, ``hnsw_ef_search``, ``insert_batch_size``, ...). The provider is shut
    down on exit; the table is kept.
    """
    provider = make_provider(PGVectorVectorIOConfig.from_dsn(dsn, **config), provider_id)
    await provider.initialize()
    try:
        vector_db = make_vector_db(vector_db_id, dimension, provider_id)
        if fresh:
            await provider.unregister_vector_db(vector_db)
        await provider.register_vector_db(vector_db)
        yield provider, vector_db
    finally:
        await provider.shutdown()
