"""inline::sqlite-vec: the Vector IO provider over ``SqliteVecStore``.

The router has already validated requests, computed embeddings and will fuse hybrid results and
apply ``score_threshold``; this provider stores chunks and answers one plain vector or keyword
query at a time (``lamina.apis.vector_io.VectorIOProvider``).

A vector DB's storage is named by its ``provider_vector_db_id`` (its ``provider_resource_id``,
else its identifier). Storage that is missing when a request arrives (the SQLite file was deleted
under a persisted registration) is created on demand, so the vector DB answers empty rather than
failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import structlog

from lamina.apis.vector_io import Chunk, ChunkQuery, QueryChunksResponse, VectorDB
from lamina.errors import BadRequestError, NotFoundError
from lamina.providers import ProviderBase, ProviderContext
from lamina_sqlite_vec.config import DEFAULT_DB_NAME, SQLiteVectorIOConfig
from lamina_sqlite_vec.db import Collection, EmbeddingError
from lamina_sqlite_vec.store import SqliteVecStore

log = structlog.get_logger(__name__)


async def create_provider(
    config: SQLiteVectorIOConfig, deps: dict, context: ProviderContext
) -> SQLiteVecVectorIOProvider:
    return SQLiteVecVectorIOProvider(config, context)


def resolve_db_path(config: SQLiteVectorIOConfig, context: ProviderContext) -> Path:
    if config.db_path:
        return Path(config.db_path).expanduser()
    return Path(context.state_dir) / DEFAULT_DB_NAME


class SQLiteVecVectorIOProvider(ProviderBase):
    def __init__(self, config: SQLiteVectorIOConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.db_path = resolve_db_path(config, context)
        self.store: SqliteVecStore | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        if self.store is not None:
            return
        store = SqliteVecStore(
            self.db_path,
            read_connections=self.config.read_connections,
            busy_timeout_ms=self.config.busy_timeout_ms,
        )
        try:
            await store.open()
        except BaseException:
            await store.aclose()
            raise
        self.store = store
        log.info("sqlite_vec_opened", provider_id=self.provider_id, db_path=str(self.db_path))

    async def shutdown(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            await store.aclose()

    async def health(self) -> dict[str, Any]:
        if self.store is None:
            return {"status": "Error", "message": "the provider is not initialized"}
        try:
            await self.store.ping()
        except Exception as exc:  # reported, not raised
            return {"status": "Error", "message": f"{self.db_path}: {exc}"}
        return {"status": "OK"}

    def _store(self) -> SqliteVecStore:
        if self.store is None:
            raise RuntimeError("inline::sqlite-vec provider used before initialize()")
        return self.store

    # -- vector DBs ----------------------------------------------------------------------------

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        name = vector_db.provider_vector_db_id
        coll, replaced = await self._store().ensure(
            name, vector_db.embedding_dimension, vector_db.model_dump_json()
        )
        if replaced:
            log.warning(
                "sqlite_vec_collection_replaced",
                vector_db_id=vector_db.identifier,
                dimension=coll.dimension,
                reason="stored with another embedding dimension; its chunks were dropped",
            )

    async def unregister_vector_db(self, vector_db: VectorDB) -> None:
        await self._store().drop(vector_db.provider_vector_db_id)

    async def _collection(self, vector_db: VectorDB) -> Collection:
        store = self._store()
        name = vector_db.provider_vector_db_id
        coll = store.cached(name)
        if coll is None or coll.dimension != vector_db.embedding_dimension:
            coll, _ = await store.ensure(name, vector_db.embedding_dimension)
        return coll

    # -- chunks --------------------------------------------------------------------------------

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        coll = await self._collection(vector_db)
        try:
            await self._store().upsert(coll, chunks)
        except EmbeddingError as exc:
            raise BadRequestError(f"vector DB {vector_db.identifier!r}: {exc}", param="chunks") from None
        except apsw.SQLError as exc:
            raise self._translate(vector_db, exc) from None

    async def query_chunks(self, vector_db: VectorDB, query: ChunkQuery) -> QueryChunksResponse:
        coll = await self._collection(vector_db)
        store = self._store()
        try:
            if query.mode == "keyword":
                return await store.query_keyword(coll, query.text, query.k)
            if query.embedding is None:
                raise BadRequestError("a vector query needs an embedding", param="embedding")
            return await store.query_vector(coll, query.embedding, query.k)
        except EmbeddingError as exc:
            raise BadRequestError(f"vector DB {vector_db.identifier!r}: query {exc}", param="query") from None
        except apsw.SQLError as exc:
            raise self._translate(vector_db, exc) from None

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        if not chunk_ids:
            return
        coll = await self._collection(vector_db)
        try:
            await self._store().delete(coll, chunk_ids)
        except apsw.SQLError as exc:
            raise self._translate(vector_db, exc) from None

    def _translate(self, vector_db: VectorDB, exc: apsw.SQLError) -> Exception:
        """A table dropped under a running request (unregistered meanwhile) -> 404; else as is."""
        if "no such table" in str(exc):
            self._store().forget(vector_db.provider_vector_db_id)
            return NotFoundError(f"vector DB {vector_db.identifier!r} was unregistered", param="vector_db_id")
        return exc
