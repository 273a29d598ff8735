"""The SQLite file behind the provider: one writer thread, a few reader threads, each with its own
connection, and async (and blocking) entry points that hand work to them.

* Every write (register, drop, insert, delete) runs on the single writer thread, so writes are
  serialised in this process and never wait on each other's locks; each is one transaction.
* Queries run on ``read_connections`` reader threads. The file is in WAL mode, so they read a
  consistent snapshot while the writer writes.
* Nothing touches SQLite on the event loop: the async methods await the threads' futures.
  JSON (de)serialisation and float packing happen on those threads too.

``open_for_bench`` gives the same store, bound to one collection, without a server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import apsw

from lamina.apis.vector_io import Chunk, QueryChunksResponse
from lamina_sqlite_vec import db
from lamina_sqlite_vec.db import Collection

T = TypeVar("T")


class _ConnectionThreads:
    """Threads that each own one connection, opened on the thread's first task."""

    def __init__(self, path: Path, busy_timeout_ms: int, workers: int, name: str) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._local = threading.local()
        self._connections: list[apsw.Connection] = []
        self._lock = threading.Lock()

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = db.open_connection(self._path, self._busy_timeout_ms)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return fn(conn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._executor.submit(self._call, fn, args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self.submit(fn, *args).result()

    def close(self) -> None:
        """Wait for queued work, then close every connection (blocking)."""
        self._executor.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


# -- work done on the threads ----------------------------------------------------------------


def _upsert(conn: apsw.Connection, coll: Collection, chunks: Sequence[Chunk]) -> int:
    rows = [db.chunk_row(chunk, coll.dimension) for chunk in chunks]
    db.upsert_rows(conn, coll, rows)
    return len(rows)


def _response(hits: list[tuple[str, float]]) -> QueryChunksResponse:
    return QueryChunksResponse(
        chunks=[db.parse_chunk(chunk) for chunk, _ in hits], scores=[score for _, score in hits]
    )


def _query_vector(conn: apsw.Connection, coll: Collection, embedding: Any, k: int) -> QueryChunksResponse:
    return _response(db.query_vector(conn, coll, embedding, k))


def _query_keyword(conn: apsw.Connection, coll: Collection, text: str, k: int) -> QueryChunksResponse:
    return _response(db.query_keyword(conn, coll, text, k))


def _ping(conn: apsw.Connection) -> int:
    return conn.execute("SELECT count(*) FROM " + db.REGISTRY).fetchone()[0]


class SqliteVecStore:
    """One SQLite file of collections (a collection per vector DB)."""

    def __init__(self, path: str | Path, *, read_connections: int = 2, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _ConnectionThreads(self.path, busy_timeout_ms, 1, "sqlite-vec-write")
        self._readers = _ConnectionThreads(self.path, busy_timeout_ms, read_connections, "sqlite-vec-read")
        self._collections: dict[str, Collection] = {}
        self._closed = False

    # -- lifecycle (async) --------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and its registry table; learn the stored collections."""
        await self._writer.run(db.init_schema)
        for coll in await self._writer.run(db.list_collections):
            self._collections[coll.name] = coll

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._readers.close()

    async def ping(self) -> int:
        return await self._readers.run(_ping)

    # -- collections --------------------------------------------------------------------------

    def cached(self, name: str) -> Collection | None:
        return self._collections.get(name)

    def forget(self, name: str) -> None:
        self._collections.pop(name, None)

    async def ensure(
        self, name: str, dimension: int, vector_db_json: str | None = None
    ) -> tuple[Collection, bool]:
        coll, replaced = await self._writer.run(db.ensure_collection, name, dimension, vector_db_json)
        self._collections[name] = coll
        return coll, replaced

    async def drop(self, name: str) -> bool:
        self._collections.pop(name, None)
        return await self._writer.run(db.drop_collection, name)

    # -- chunks -------------------------------------------------------------------------------

    async def upsert(self, coll: Collection, chunks: Sequence[Chunk]) -> int:
        return await self._writer.run(_upsert, coll, chunks)

    async def delete(self, coll: Collection, chunk_ids: Sequence[str]) -> int:
        return await self._writer.run(db.delete_ids, coll, chunk_ids)

    async def query_vector(self, coll: Collection, embedding: Any, k: int) -> QueryChunksResponse:
        return await self._readers.run(_query_vector, coll, embedding, k)

    async def query_keyword(self, coll: Collection, text: str, k: int) -> QueryChunksResponse:
        return await self._readers.run(_query_keyword, coll, text, k)

    async def count(self, coll: Collection) -> int:
        return await self._readers.run(db.count, coll)

    # -- blocking twins (benchmarks, scripts) ---------------------------------------------------

    def open_sync(self) -> None:
        self._writer.run_sync(db.init_schema)
        for coll in self._writer.run_sync(db.list_collections):
            self._collections[coll.name] = coll

    def ensure_sync(self, name: str, dimension: int) -> Collection:
        coll, _ = self._writer.run_sync(db.ensure_collection, name, dimension, None)
        self._collections[name] = coll
        return coll


class BenchIndex:
    """One collection of a ``SqliteVecStore``, called directly (no server, no router).

    Blocking methods (``insert``, ``query_vector``, ``query_keyword``, ``delete``, ``count``) run
    on the store's threads and wait; the ``a``-prefixed twins are awaitable, so a benchmark can
    drive concurrent queries from one event loop. Embeddings may be lists of floats or numpy
    arrays (float32 or not).
    """

    def __init__(self, store: SqliteVecStore, coll: Collection) -> None:
        self.store = store
        self.collection = coll

    @property
    def dimension(self) -> int:
        return self.collection.dimension

    @staticmethod
    def make_chunks(
        chunk_ids: Sequence[str], embeddings: Sequence[Any], texts: Sequence[str] | None = None
    ) -> list[Chunk]:
        texts = texts if texts is not None else [""] * len(chunk_ids)
        # model_construct: no validation, so numpy rows pass as they are (``db.vector_blob`` packs them).
        return [
            Chunk.model_construct(
                content=text, chunk_id=chunk_id, metadata={"document_id": chunk_id}, embedding=emb
            )
            for chunk_id, emb, text in zip(chunk_ids, embeddings, texts, strict=True)
        ]

    def insert(
        self, chunk_ids: Sequence[str], embeddings: Sequence[Any], texts: Sequence[str] | None = None
    ) -> int:
        """Upsert chunks in one transaction; returns how many."""
        chunks = self.make_chunks(chunk_ids, embeddings, texts)
        return self.store._writer.run_sync(_upsert, self.collection, chunks)

    def insert_chunks(self, chunks: Sequence[Chunk]) -> int:
        return self.store._writer.run_sync(_upsert, self.collection, chunks)

    def query_vector(self, embedding: Any, k: int = 10) -> QueryChunksResponse:
        return self.store._readers.run_sync(_query_vector, self.collection, embedding, k)

    def query_keyword(self, text: str, k: int = 10) -> QueryChunksResponse:
        return self.store._readers.run_sync(_query_keyword, self.collection, text, k)

    def delete(self, chunk_ids: Sequence[str]) -> int:
        return self.store._writer.run_sync(db.delete_ids, self.collection, chunk_ids)

    def count(self) -> int:
        return self.store._readers.run_sync(db.count, self.collection)

    async def ainsert(
        self, chunk_ids: Sequence[str], embeddings: Sequence[Any], texts: Sequence[str] | None = None
    ) -> int:
        chunks = self.make_chunks(chunk_ids, embeddings, texts)
        return await self.store.upsert(self.collection, chunks)

    async def aquery_vector(self, embedding: Any, k: int = 10) -> QueryChunksResponse:
        return await self.store.query_vector(self.collection, embedding, k)

    async def aquery_keyword(self, text: str, k: int = 10) -> QueryChunksResponse:
        return await self.store.query_keyword(self.collection, text, k)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> BenchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_for_bench(
    path: str | Path, dimension: int, *, name: str = "bench", read_connections: int = 2
) -> BenchIndex:
    """Open (creating when missing) collection ``name`` of ``dimension`` in the SQLite file ``path``.

    The index the provider uses, minus the server: see ``BenchIndex``. Reopening the same path and
    name finds the chunks inserted before; another dimension replaces the collection. Close it
    (or use it as a context manager) to stop its threads.
    """
    store = SqliteVecStore(path, read_connections=read_connections)
    store.open_sync()
    return BenchIndex(store, store.ensure_sync(name, dimension))
