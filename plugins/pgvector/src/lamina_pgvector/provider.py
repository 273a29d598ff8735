"""remote::pgvector: chunks in PostgreSQL tables with pgvector, one table per vector DB.

Each vector DB is one table (named by ``table_name``) holding::

    chunk_id  text PRIMARY KEY
    content   text       -- the chunk's text (images dropped, NUL characters removed)
    metadata  jsonb      -- the chunk's metadata, queryable
    document  json       -- the whole chunk but its embedding, verbatim, returned by queries
    embedding vector(d)  -- HNSW index with vector_cosine_ops (d <= 2000)
    tsv       tsvector   -- GENERATED ALWAYS AS (to_tsvector('english', content)) STORED, GIN index

Scores (higher is better, always finite):

* vector mode: cosine similarity ``1 - (embedding <=> query)``, in [-1, 1] (0 for a zero vector,
  whose cosine is undefined);
* keyword mode: ``ts_rank_cd(tsv, query, 1|32)`` over the chunks matching at least one of the
  query's terms (``plainto_tsquery('english', text)`` with its ``&`` turned into ``|``): cover
  density, divided by 1 + log(the chunk's length in words), mapped into [0, 1) by ``r / (r + 1)``.

Inserts upsert in one transaction; a large insert into a small table (``bulk_insert_min_chunks``)
drops the HNSW index, loads and rebuilds it in that transaction, which is several times faster than
growing the graph row by row. Everything is asyncpg on a pool: the event loop never waits on
PostgreSQL, and row preparation for large inserts (JSON, binary vectors) runs in a worker thread.
Every PostgreSQL or connection failure becomes an ``UpstreamError`` (502) naming the provider and
the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import pydantic_core

from lamina.apis.common import content_to_text
from lamina.apis.vector_io import Chunk, ChunkQuery, QueryChunksResponse, VectorDB
from lamina.errors import ConflictError, LaminaError, UpstreamError
from lamina.providers.base import ProviderBase, ProviderContext
from lamina_pgvector.config import PGVectorVectorIOConfig

log = logging.getLogger("lamina.pgvector")

T = TypeVar("T")

_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)  # TimeoutError is an OSError
HNSW_MAX_DIMENSION = 2000  # pgvector indexes `vector` columns of at most 2000 dimensions
THREAD_ROWS = 200  # inserts of more chunks prepare their rows in a worker thread
FIX_EXTENSION = (
    "install pgvector on the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql-<major>-pgvector; "
    "Docker: the pgvector/pgvector image; see https://github.com/pgvector/pgvector#installation), then "
    "have a superuser run CREATE EXTENSION vector in database '{db}'"
)


async def create_provider(
    config: PGVectorVectorIOConfig, deps: dict, context: ProviderContext
) -> PGVectorVectorIOProvider:
    return PGVectorVectorIOProvider(config, context)


# -- names and rows ------------------------------------------------------------------------------


def table_name(provider_vector_db_id: str) -> str:
    """The table of a vector DB: readable, unique, a valid identifier of at most 63 bytes."""
    slug = re.sub(r"[^a-z0-9_]+", "_", provider_vector_db_id.lower()).strip("_")[:32]
    digest = hashlib.sha256(provider_vector_db_id.encode()).hexdigest()[:10]
    return f"lamina_vdb_{slug}_{digest}" if slug else f"lamina_vdb_{digest}"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _encode_vector(value: Any) -> bytes:
    """pgvector's binary format: int16 dimension, int16 unused, float4 values (network order)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    values = list(value)
    return struct.pack(f">HH{len(values)}f", len(values), 0, *values)


def _decode_vector(data: bytes) -> list[float]:
    dim, _ = struct.unpack_from(">HH", data)
    return list(struct.unpack_from(f">{dim}f", data, 4))


def _strip_nul(value: Any) -> Any:
    """``value`` without NUL characters (jsonb and text columns cannot hold them)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(v) for v in value]
    return value


def prepare_rows(chunks: list[Chunk]) -> list[list[Any]]:
    """Column arrays (ids, contents, metadata, documents, vectors) for one upsert; last id wins.

    Rows are sorted by chunk_id so that concurrent upserts lock rows in one order (no deadlocks).
    """
    by_id: dict[str, Chunk] = {}
    for chunk in chunks:
        if not chunk.chunk_id:
            raise ValueError("every chunk needs a chunk_id")
        if chunk.embedding is None:
            raise ValueError(f"chunk '{chunk.chunk_id}' has no embedding")
        by_id[chunk.chunk_id] = chunk
    columns: list[list[Any]] = [[], [], [], [], []]
    for chunk_id in sorted(by_id):
        chunk = by_id[chunk_id]
        metadata = pydantic_core.to_json(chunk.metadata).decode()
        if "\\u0000" in metadata:
            metadata = pydantic_core.to_json(_strip_nul(chunk.metadata)).decode()
        columns[0].append(chunk_id)
        columns[1].append(content_to_text(chunk.content).replace("\x00", ""))
        columns[2].append(metadata)
        columns[3].append(chunk.model_dump_json(exclude={"embedding"}))
        columns[4].append(_encode_vector(chunk.embedding))
    return columns


def _chunk(row: asyncpg.Record) -> Chunk:
    chunk = Chunk.model_validate_json(row["document"])
    chunk.chunk_id = row["chunk_id"]
    chunk.embedding = row["embedding"]
    return chunk


def _cosine_score(distance: float | None) -> float:
    if distance is None or not math.isfinite(distance):
        return 0.0  # a zero vector: cosine similarity undefined
    return min(1.0, max(-1.0, 1.0 - float(distance)))


def _keyword_score(rank: float | None) -> float:
    if rank is None or not math.isfinite(rank):
        return 0.0
    return max(0.0, float(rank))


def _ranked(rows: list[tuple[Chunk, float]]) -> QueryChunksResponse:
    rows.sort(key=lambda cs: (-cs[1], cs[0].chunk_id or ""))
    return QueryChunksResponse(chunks=[c for c, _ in rows], scores=[s for _, s in rows])


# -- SQL -------------------------------------------------------------------------------------------

_UPSERT = (
    "INSERT INTO {t} (chunk_id, content, metadata, document, embedding) "
    "SELECT u.chunk_id, u.content, u.metadata::jsonb, u.document::json, u.embedding "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::{vector}[]) "
    "AS u(chunk_id, content, metadata, document, embedding) "
    "ON CONFLICT (chunk_id) DO UPDATE SET content = EXCLUDED.content, metadata = EXCLUDED.metadata, "
    "document = EXCLUDED.document, embedding = EXCLUDED.embedding"
)
_VECTOR_QUERY = (
    "SELECT chunk_id, document, embedding, embedding <=> $1 AS distance FROM {t} "
    "ORDER BY embedding <=> $1 LIMIT $2"
)
# The query's terms, OR-ed: plainto_tsquery parses and stems the text as to_tsvector does the
# chunks (and drops stop words); its output is lexemes joined by ' & ' (quoted, so a lexeme
# cannot contain that separator).
_KEYWORD_QUERY = (
    "WITH q AS (SELECT replace(plainto_tsquery('english', $1)::text, ' & ', ' | ')::tsquery AS q) "
    "SELECT chunk_id, document, embedding, ts_rank_cd(tsv, q.q, 33) AS rank FROM {t}, q "
    "WHERE tsv @@ q.q ORDER BY rank DESC, chunk_id LIMIT $2"
)


class PGVectorVectorIOProvider(ProviderBase):
    def __init__(self, config: PGVectorVectorIOConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self._pool: asyncpg.Pool | None = None
        self._vector_type = "vector"  # schema-qualified once the extension is found
        self._ready: dict[str, int] = {}  # table -> dimension, for tables ensured by this process
        self._locks: dict[str, asyncio.Lock] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    def _error(self, action: str, exc: BaseException) -> UpstreamError:
        detail = str(exc).strip() or type(exc).__name__
        return UpstreamError(self.provider_id, f"{action} at {self.config.where()} failed: {detail}")

    @contextlib.asynccontextmanager
    async def _upstream(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except LaminaError:
            raise
        except _ERRORS as exc:
            raise self._error(action, exc) from exc

    def _connect_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {
            "host": c.host,
            "port": c.port,
            "database": c.db,
            "user": c.user,
            "password": c.password_value(),
            "ssl": c.ssl_mode,
            "timeout": c.connect_timeout,
            "command_timeout": c.command_timeout,
            "server_settings": {"application_name": f"lamina-pgvector:{self.provider_id}"},
        }

    async def initialize(self) -> None:
        async with self._upstream("connecting to PostgreSQL"):
            conn = await asyncpg.connect(**self._connect_kwargs())
            try:
                schema = await self._ensure_extension(conn)
            finally:
                await conn.close()
            self._vector_type = f"{_quote(schema)}.vector"
            self._pool = await asyncpg.create_pool(
                **self._connect_kwargs(),
                min_size=self.config.pool_min_size,
                max_size=self.config.pool_max_size,
                init=lambda conn: self._init_connection(conn, schema),
            )
        log.info("pgvector provider %s connected to %s", self.provider_id, self.config.where())

    async def _ensure_extension(self, conn: asyncpg.Connection) -> str:
        """CREATE EXTENSION IF NOT EXISTS vector; the schema holding its type. Clear errors if it cannot."""
        fix = FIX_EXTENSION.format(db=self.config.db)
        schema = await conn.fetchval(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )
        if schema:
            return schema
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except asyncpg.InsufficientPrivilegeError as exc:
            raise UpstreamError(
                self.provider_id,
                f"the pgvector extension is not enabled in database '{self.config.db}' at "
                f"{self.config.where()}, and user '{self.config.user}' may not create it ({exc}). "
                f"Fix: have a superuser run CREATE EXTENSION vector in database '{self.config.db}'.",
            ) from exc
        except asyncpg.UniqueViolationError:
            pass  # created concurrently by another process
        except asyncpg.PostgresError as exc:
            raise UpstreamError(
                self.provider_id,
                f"the pgvector extension is not available on {self.config.where()} ({exc}). Fix: {fix}.",
            ) from exc
        return await conn.fetchval(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )

    @staticmethod
    async def _init_connection(conn: asyncpg.Connection, schema: str) -> None:
        await conn.set_type_codec(
            "vector", schema=schema, encoder=_encode_vector, decoder=_decode_vector, format="binary"
        )

    async def shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except (TimeoutError, *_ERRORS):
                pool.terminate()

    async def health(self) -> dict[str, Any]:
        try:
            async with self._upstream("a health check"):
                await asyncio.wait_for(self.pool.fetchval("SELECT 1"), timeout=self.config.connect_timeout)
        except LaminaError as exc:
            return {"status": "Error", "message": exc.message}
        return {"status": "OK"}

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise UpstreamError(self.provider_id, f"not connected to {self.config.where()} (not initialized)")
        return self._pool

    # -- tables ------------------------------------------------------------------------------------

    async def _ensure_table(self, vector_db: VectorDB) -> str:
        """Create the vector DB's table and indexes if missing; check its dimension. Returns the table."""
        table = table_name(vector_db.provider_vector_db_id)
        dim = vector_db.embedding_dimension
        if self._ready.get(table) == dim:
            return table
        lock = self._locks.setdefault(table, asyncio.Lock())
        async with lock:
            if self._ready.get(table) == dim:
                return table
            async with self._upstream(f"preparing vector DB '{vector_db.identifier}'"):
                async with self.pool.acquire() as conn, conn.transaction():
                    await self._lock_table(conn, table)
                    stored = await self._stored_dimension(conn, table)
                    if stored is None:
                        await self._create_table(conn, vector_db, table)
                    elif stored != dim:
                        raise ConflictError(
                            f"vector DB '{vector_db.identifier}': table {table} at {self.config.where()} "
                            f"(provider_vector_db_id '{vector_db.provider_vector_db_id}') holds "
                            f"{stored}-dimensional embeddings, but the vector DB has {dim} dimensions. "
                            f"Unregister the vector DB using that provider_vector_db_id, register this one "
                            f"with another provider_vector_db_id, or DROP TABLE {table}.",
                            param="embedding_dimension",
                        )
            self._ready[table] = dim
        return table

    @staticmethod
    async def _lock_table(conn: asyncpg.Connection, table: str) -> None:
        """Serialise DDL on one table across processes (held until the transaction ends)."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7203))", table)

    @staticmethod
    async def _stored_dimension(conn: asyncpg.Connection, table: str) -> int | None:
        return await conn.fetchval(
            "SELECT a.atttypmod FROM pg_attribute a WHERE a.attrelid = to_regclass($1) "
            "AND a.attname = 'embedding' AND NOT a.attisdropped",
            _quote(table),
        )

    async def _create_table(self, conn: asyncpg.Connection, vector_db: VectorDB, table: str) -> None:
        t, dim = _quote(table), vector_db.embedding_dimension
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "chunk_id text PRIMARY KEY, "
            "content text NOT NULL, "
            "metadata jsonb NOT NULL DEFAULT '{}'::jsonb, "
            "document json NOT NULL, "
            f"embedding {self._vector_type}({dim}) NOT NULL, "
            "tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED)"
        )
        if dim <= HNSW_MAX_DIMENSION:
            await conn.execute(self._hnsw_ddl(table))
        else:
            log.warning(
                "vector DB %s: %d dimensions is more than pgvector's HNSW limit (%d): queries scan the table",
                vector_db.identifier,
                dim,
                HNSW_MAX_DIMENSION,
            )
        await conn.execute(f"CREATE INDEX IF NOT EXISTS {_quote(table + '_fts')} ON {t} USING gin (tsv)")
        comment = (
            f"lamina vector DB {vector_db.identifier!r} "
            f"(provider_vector_db_id {vector_db.provider_vector_db_id!r})"
        )
        await conn.execute(f"COMMENT ON TABLE {t} IS {_literal(comment)}")

    def _hnsw_ddl(self, table: str) -> str:
        c = self.config
        return (
            f"CREATE INDEX IF NOT EXISTS {_quote(table + '_hnsw')} ON {_quote(table)} "
            f"USING hnsw (embedding vector_cosine_ops) WITH (m = {c.hnsw_m}, "
            f"ef_construction = {c.hnsw_ef_construction})"
        )

    async def _on_table(self, vector_db: VectorDB, action: str, run: Callable[[str], Awaitable[T]]) -> T:
        """``run(quoted table)``, translating errors; a table dropped behind our back is recreated once."""
        for attempt in (1, 2):
            table = await self._ensure_table(vector_db)
            try:
                async with self._upstream(f"{action} (vector DB '{vector_db.identifier}', table {table})"):
                    return await run(_quote(table))
            except UpstreamError as exc:
                if attempt == 1 and isinstance(exc.__cause__, asyncpg.UndefinedTableError):
                    self._ready.pop(table, None)
                    continue
                raise
        raise AssertionError("unreachable")

    # -- the VectorIOProvider protocol ---------------------------------------------------------------

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        await self._ensure_table(vector_db)

    async def unregister_vector_db(self, vector_db: VectorDB) -> None:
        table = table_name(vector_db.provider_vector_db_id)
        async with self._locks.setdefault(table, asyncio.Lock()):
            async with self._upstream(f"dropping vector DB '{vector_db.identifier}' (table {table})"):
                async with self.pool.acquire() as conn, conn.transaction():
                    await self._lock_table(conn, table)
                    await conn.execute(f"DROP TABLE IF EXISTS {_quote(table)}")
            self._ready.pop(table, None)

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        if len(chunks) > THREAD_ROWS:
            columns = await asyncio.to_thread(prepare_rows, chunks)
        else:
            columns = prepare_rows(chunks)
        size = self.config.insert_batch_size

        n = len(columns[0])
        indexed = vector_db.embedding_dimension <= HNSW_MAX_DIMENSION

        async def run(t: str) -> None:
            sql = _UPSERT.format(t=t, vector=self._vector_type)
            async with self.pool.acquire() as conn, conn.transaction():
                bulk = (
                    indexed
                    and n >= self.config.bulk_insert_min_chunks
                    and await conn.fetchval(f"SELECT count(*) FROM {t}") <= 2 * n
                )
                if bulk:  # load, then build the graph once: HNSW grows slowly row by row
                    index = _quote(table_name(vector_db.provider_vector_db_id) + "_hnsw")
                    await conn.execute(f"DROP INDEX IF EXISTS {index}")
                for start in range(0, n, size):
                    await conn.execute(sql, *(col[start : start + size] for col in columns))
                if bulk:
                    await conn.execute(f"SET LOCAL maintenance_work_mem = '{self.config.index_build_memory}'")
                    await conn.execute(self._hnsw_ddl(table_name(vector_db.provider_vector_db_id)))

        await self._on_table(vector_db, f"inserting {n} chunks", run)

    async def query_chunks(self, vector_db: VectorDB, query: ChunkQuery) -> QueryChunksResponse:
        if query.mode == "keyword":
            return await self._query_keyword(vector_db, query)
        if query.embedding is None:
            raise UpstreamError(self.provider_id, "a vector query came without its embedding")
        ef_search = min(1000, max(self.config.hnsw_ef_search, 2 * query.k))

        async def run(t: str) -> list[asyncpg.Record]:
            async with self.pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
                return await conn.fetch(_VECTOR_QUERY.format(t=t), query.embedding, query.k)

        rows = await self._on_table(vector_db, "a vector query", run)
        return _ranked([(_chunk(r), _cosine_score(r["distance"])) for r in rows])

    async def _query_keyword(self, vector_db: VectorDB, query: ChunkQuery) -> QueryChunksResponse:
        text = query.text.replace("\x00", "")

        async def run(t: str) -> list[asyncpg.Record]:
            return await self.pool.fetch(_KEYWORD_QUERY.format(t=t), text, query.k)

        rows = await self._on_table(vector_db, "a keyword query", run)
        return _ranked([(_chunk(r), _keyword_score(r["rank"])) for r in rows])

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        if not chunk_ids:
            return

        async def run(t: str) -> None:
            await self.pool.execute(f"DELETE FROM {t} WHERE chunk_id = ANY($1::text[])", list(chunk_ids))

        await self._on_table(vector_db, f"deleting {len(chunk_ids)} chunks", run)

    # -- extras ------------------------------------------------------------------------------------

    async def count_chunks(self, vector_db: VectorDB) -> int:
        """How many chunks the vector DB holds (tests and benchmarks)."""

        async def run(t: str) -> int:
            return await self.pool.fetchval(f"SELECT count(*) FROM {t}")

        return await self._on_table(vector_db, "counting chunks", run)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
