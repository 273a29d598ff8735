"""``kvstore: {type: postgres}``: PostgreSQL holds the chunks; SQLite and the index are rebuilt from it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lamina.apis.vector_io import Chunk, ChunkQuery, VectorDB
from lamina.storage import open_kvstore
from lamina.storage.config import PostgresKVStoreConfig

pytestmark = pytest.mark.postgres

DIM = 8


def vdb(identifier: str = "docs") -> VectorDB:
    return VectorDB(identifier=identifier, provider_id="faiss", embedding_model="m", embedding_dimension=DIM)


def chunks(n: int, prefix: str = "c", seed: int = 0) -> list[Chunk]:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM))
    return [
        Chunk(
            content=f"{prefix} text number {i}",
            chunk_id=f"{prefix}{i}",
            metadata={"i": i},
            embedding=v.tolist(),
        )
        for i, v in enumerate(vectors)
    ]


async def stored(provider: Any, db: VectorDB) -> dict[str, str]:
    """chunk_id -> content, as the vector index and the keyword index both see them."""
    probe = ChunkQuery(mode="vector", k=1000, embedding=[1.0] * DIM)
    by_vector = {c.chunk_id: c.content for c in (await provider.query_chunks(db, probe)).chunks}
    by_keyword = {
        c.chunk_id: c.content
        for c in (await provider.query_chunks(db, ChunkQuery(mode="keyword", k=1000, text="text"))).chunks
    }
    assert by_vector == by_keyword
    return by_vector


@pytest.fixture
def pg(postgres_server: Any) -> dict[str, Any]:
    """A kvstore config on the test PostgreSQL, in a namespace of its own."""
    return postgres_server.kvstore_config(namespace=f"faiss-{uuid.uuid4().hex[:8]}")


async def test_a_new_machine_gets_every_chunk_back(make_provider: Any, tmp_path: Path, pg: dict) -> None:
    provider = await make_provider(state_dir=tmp_path / "one", kvstore=pg)
    db = vdb()
    await provider.insert_chunks(db, chunks(30))
    await provider.insert_chunks(db, [Chunk(content="text replaced", chunk_id="c0", embedding=[1.0] * DIM)])
    await provider.delete_chunks(db, ["c1", "c2"])
    before = await stored(provider, db)
    assert len(before) == 28 and before["c0"] == "text replaced"
    await provider.shutdown()
    other = await make_provider(state_dir=tmp_path / "two", kvstore=pg)
    assert await stored(other, db) == before
    assert other._dbs["docs"].open_stats["index_file"] == "built"
    await other.shutdown()
    again = await make_provider(state_dir=tmp_path / "two", kvstore=pg)  # now in sync: nothing reloaded
    assert await stored(again, db) == before
    assert again._dbs["docs"].open_stats == {"index_file": "loaded", "caught_up": 0, "dropped": 0}


async def test_a_crash_between_the_two_writes_reloads_from_postgres(
    make_provider: Any, tmp_path: Path, pg: dict
) -> None:
    provider = await make_provider(kvstore=pg)
    db = vdb()
    await provider.insert_chunks(db, chunks(5))
    handle = provider._dbs["docs"]

    def crash(*args: Any) -> None:
        raise RuntimeError("killed before the local commit")

    handle._commit_sync = crash
    with pytest.raises(RuntimeError):
        await provider.insert_chunks(db, chunks(3, prefix="late"))
    for h in provider._dbs.values():
        h.closing = True
    provider._dbs.clear()
    reopened = await make_provider(kvstore=pg)
    found = await stored(reopened, db)
    assert set(found) == {f"c{i}" for i in range(5)} | {f"late{i}" for i in range(3)}


async def test_unregister_forgets_the_chunks_everywhere(
    make_provider: Any, tmp_path: Path, pg: dict, postgres_server: Any
) -> None:
    provider = await make_provider(state_dir=tmp_path / "one", kvstore=pg)
    db = vdb()
    await provider.insert_chunks(db, chunks(10))
    await provider.unregister_vector_db(db)
    await provider.register_vector_db(db)
    assert await stored(provider, db) == {}
    await provider.shutdown()  # waits for the background deletes
    other = await make_provider(state_dir=tmp_path / "two", kvstore=pg)
    assert await stored(other, db) == {}
    kv = await open_kvstore(PostgresKVStoreConfig(**pg))
    try:
        keys = await kv.keys_in_range("faiss:chunk:", "faiss:chunk:\U0010ffff")
    finally:
        await kv.close()
    assert keys == []


async def test_chunks_stored_before_postgres_are_uploaded(
    make_provider: Any, tmp_path: Path, pg: dict
) -> None:
    local = await make_provider(state_dir=tmp_path / "one")  # sqlite in the state directory
    db = vdb()
    await local.insert_chunks(db, chunks(12))
    before = await stored(local, db)
    await local.shutdown()
    provider = await make_provider(state_dir=tmp_path / "one", kvstore=pg)
    assert await stored(provider, db) == before
    await provider.insert_chunks(db, chunks(2, prefix="new"))
    await provider.shutdown()
    other = await make_provider(state_dir=tmp_path / "two", kvstore=pg)
    assert set(await stored(other, db)) == set(before) | {"new0", "new1"}


async def test_concurrent_inserts_stay_in_sync(make_provider: Any, tmp_path: Path, pg: dict) -> None:
    provider = await make_provider(state_dir=tmp_path / "one", kvstore=pg)
    db = vdb()
    await asyncio.gather(*(provider.insert_chunks(db, chunks(10, prefix=f"b{i}-", seed=i)) for i in range(6)))
    await provider.shutdown()
    reopened = await make_provider(state_dir=tmp_path / "one", kvstore=pg)
    assert len(await stored(reopened, db)) == 60
    assert reopened._dbs["docs"].open_stats["index_file"] == "loaded"  # local copy was in sync
