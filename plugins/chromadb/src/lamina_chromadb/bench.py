"""A provider opened outside a Lamina server, for benchmarks (``bench/``) and ad-hoc scripts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamina.apis.vector_io import VectorDB
    from lamina_chromadb.provider import ChromaVectorIOProvider


async def open_for_bench(
    url: str,
    dimension: int,
    *,
    vector_db_id: str = "bench-chroma",
    embedding_model: str = "all-MiniLM-L6-v2",
    provider_id: str = "chromadb",
    **config: Any,
) -> tuple[ChromaVectorIOProvider, VectorDB]:
    """A started ``remote::chromadb`` provider on the Chroma at ``url`` and a registered vector DB.

    ``config`` overrides ``ChromaVectorIOConfig`` fields (``insert_batch_size``, ...). Call
    ``await provider.shutdown()`` when done; ``await provider.unregister_vector_db(vdb)`` drops
    the collection.
    """
    from lamina.apis.vector_io import VectorDB
    from lamina.providers import ProviderContext
    from lamina.specs import Api
    from lamina_chromadb.config import ChromaVectorIOConfig
    from lamina_chromadb.provider import ChromaVectorIOProvider

    context = ProviderContext(
        api=Api.vector_io,
        provider_id=provider_id,
        provider_type="remote::chromadb",
        state_dir=Path(tempfile.gettempdir()) / "lamina-bench-chromadb",
    )
    provider = ChromaVectorIOProvider(ChromaVectorIOConfig(url=url, **config), context)
    await provider.initialize()
    vector_db = VectorDB(
        identifier=vector_db_id,
        provider_id=provider_id,
        provider_resource_id=vector_db_id,
        embedding_model=embedding_model,
        embedding_dimension=dimension,
    )
    await provider.register_vector_db(vector_db)
    return provider, vector_db
