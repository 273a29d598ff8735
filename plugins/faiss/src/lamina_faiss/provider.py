"""The inline::faiss provider: vector DBs of chunks in SQLite, searched by faiss and FTS5.

Each vector DB gets a ``VectorDBHandle`` with a single-thread executor: every faiss and SQLite call
for it runs there, in order, so faiss (not thread-safe for writes) needs no locking against itself
and the event loop never waits on either. Different vector DBs work in parallel.

Durability: an insert is acknowledged once its chunks (with their embeddings) are committed to
SQLite (``synchronous=FULL``). The faiss index is a cache of those rows: it is written to
``<state_dir>/indexes/<token>.faiss`` at most every ``index_save_interval`` seconds (on another
thread, atomically) and at shutdown, and on open it is reconciled with SQLite: ids SQLite has and
the file lacks are added from the stored embeddings, ids the file has and SQLite lacks are dropped.
A missing, unreadable or differently configured index file is rebuilt from SQLite.

With ``kvstore: {type: postgres}`` PostgreSQL holds the durable copy of every chunk and SQLite is
in its turn a cache of it (``lamina_faiss.mirror``): a change is written to PostgreSQL first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import structlog

from lamina.apis.common import content_to_text
from lamina.apis.vector_io import Chunk, ChunkQuery, QueryChunksResponse, VectorDB
from lamina.errors import BadRequestError, ConflictError, NotFoundError
from lamina.providers import ProviderBase, ProviderContext
from lamina.storage import PostgresKVStoreConfig, SqliteKVStoreConfig, open_kvstore
from lamina_faiss.config import FaissVectorIOConfig
from lamina_faiss.index import IndexSettings, VectorIndex, default_add_threads
from lamina_faiss.mirror import KVMirror, MirrorMeta, Row
from lamina_faiss.store import Catalog, CatalogEntry, ChunkTable, table_prefix

log = structlog.get_logger(__name__)


async def create_provider(
    config: FaissVectorIOConfig, deps: dict[Any, Any], context: ProviderContext
) -> FaissVectorIOProvider:
    return FaissVectorIOProvider(config, context)


class FaissVectorIOProvider(ProviderBase):
    def __init__(self, config: FaissVectorIOConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.path = config.sqlite_path(context.state_dir)
        # A sqlite kvstore's namespace lets several providers share its file; a postgres kvstore's
        # applies to its keys, and the local file in the state directory is this provider's alone.
        sqlite = isinstance(config.kvstore, SqliteKVStoreConfig)
        self.prefix = table_prefix(config.kvstore.namespace if sqlite else None)
        self.index_dir = Path(context.state_dir) / "indexes"
        self._dbs: dict[str, VectorDBHandle] = {}
        self._lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faiss-catalog")
        self._catalog: Catalog | None = None
        self.mirror: KVMirror | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def initialize(self) -> None:
        self._catalog = await self._run(Catalog, self.path, self.prefix)
        if isinstance(self.config.kvstore, PostgresKVStoreConfig):
            self.mirror = KVMirror(await open_kvstore(self.config.kvstore))
        log.info("faiss_opened", provider_id=self.provider_id, path=str(self.path), index=self.config.index)

    async def shutdown(self) -> None:
        async with self._lock:
            handles, self._dbs = list(self._dbs.values()), {}
        for handle in handles:
            try:
                await handle.close(save=True)
            except Exception as exc:  # keep closing the others
                log.warning("faiss_close_failed", vector_db=handle.key, error=str(exc))
        if self._catalog is not None:
            await self._run(self._catalog.close)
            self._catalog = None
        if self.mirror is not None:
            mirror, self.mirror = self.mirror, None
            await mirror.close()
        self._executor.shutdown(wait=False)

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}

    # -- vector DBs ----------------------------------------------------------------------------

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        await self._open(vector_db)

    async def unregister_vector_db(self, vector_db: VectorDB) -> None:
        key = vector_db.provider_vector_db_id
        async with self._lock:
            handle = self._dbs.pop(key, None)
            if handle is not None:
                await handle.close(save=False)
            if self.mirror is not None and (meta := await self.mirror.meta(key)) is not None:
                await self.mirror.drop(key, meta)
            entry = await self._run(self._catalog_or_raise().get, key)
            if entry is not None:
                await self._drop_local(entry)
        log.info("faiss_vector_db_dropped", vector_db=key)

    async def _drop_local(self, entry: CatalogEntry) -> None:
        await self._run(self._catalog_or_raise().delete, entry, self.prefix)
        path = self._index_path(entry)
        for stale in (path, path.with_name(path.name + ".tmp")):
            stale.unlink(missing_ok=True)

    async def _open(self, vector_db: VectorDB) -> VectorDBHandle:
        key = vector_db.provider_vector_db_id
        handle = self._dbs.get(key)
        if handle is not None:
            _check_dimension(handle.entry.dimension, vector_db)
            return handle
        async with self._lock:
            handle = self._dbs.get(key)
            if handle is not None:
                _check_dimension(handle.entry.dimension, vector_db)
                return handle
            catalog = self._catalog_or_raise()
            entry = await self._run(catalog.get, key)
            meta: MirrorMeta | None = None
            upload = False
            if self.mirror is not None:
                meta = await self.mirror.meta(key)
                if meta is None:
                    # Chunks stored before the kvstore was postgres are uploaded; a copy that was
                    # synced once belongs to a vector DB unregistered since, and goes.
                    upload = entry is not None and entry.synced is None
                    if entry is not None and not upload:
                        await self._drop_local(entry)
                        entry = None
                    meta = await self.mirror.create(
                        key, entry.dimension if upload else vector_db.embedding_dimension
                    )
                _check_dimension(meta.dimension, vector_db)
                if entry is not None and not upload and entry.synced != meta.synced:
                    log.info(
                        "faiss_reloading_from_kvstore", vector_db=key, local=entry.synced, kvstore=meta.synced
                    )
                    await self._drop_local(entry)
                    entry = None
            if entry is None:
                entry = await self._run(
                    catalog.create, key, vector_db.embedding_dimension, vector_db.model_dump_json()
                )
            _check_dimension(entry.dimension, vector_db)
            handle = VectorDBHandle(self, entry, meta)
            try:
                await handle.open()
                if meta is not None and upload:
                    await handle.upload()
                elif meta is not None and entry.synced != meta.synced:
                    assert self.mirror is not None
                    await handle.restore(await self.mirror.load(meta), meta.synced)
            except BaseException:
                await handle.close(save=False)  # its thread and connection; the next call tries again
                raise
            self._dbs[key] = handle
            return handle

    def _catalog_or_raise(self) -> Catalog:
        if self._catalog is None:
            raise NotFoundError(f"faiss provider '{self.provider_id}' is not started")
        return self._catalog

    def _index_path(self, entry: CatalogEntry) -> Path:
        return self.index_dir / f"{entry.token}.faiss"

    # -- chunks --------------------------------------------------------------------------------

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        handle = await self._open(vector_db)
        await handle.insert(chunks)

    async def query_chunks(self, vector_db: VectorDB, query: ChunkQuery) -> QueryChunksResponse:
        handle = await self._open(vector_db)
        return await handle.query(query)

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        if not chunk_ids:
            return
        handle = await self._open(vector_db)
        await handle.delete(chunk_ids)


def _check_dimension(dimension: int, vector_db: VectorDB) -> None:
    if dimension != vector_db.embedding_dimension:
        raise ConflictError(
            f"vector DB '{vector_db.identifier}' is stored by the faiss provider with "
            f"{dimension}-dimensional embeddings, not {vector_db.embedding_dimension}: unregister it "
            "(which drops its chunks) before registering it again with another dimension",
            param="embedding_dimension",
        )


class VectorDBHandle:
    """One open vector DB: its SQLite tables, its faiss index, its thread, its save and rebuild."""

    def __init__(
        self, provider: FaissVectorIOProvider, entry: CatalogEntry, meta: MirrorMeta | None = None
    ) -> None:
        config = provider.config
        self.provider = provider
        self.entry = entry
        self.meta = meta  # with a postgres kvstore: this vector DB there
        self._write_lock = asyncio.Lock()  # one change at a time goes to the kvstore and SQLite
        self.key = entry.key
        self.index_path = provider._index_path(entry)
        self.settings = IndexSettings(
            kind=config.index,
            dimension=entry.dimension,
            m=config.hnsw_m,
            ef_construction=config.ef_construction,
            ef_search=config.ef_search,
            add_threads=default_add_threads(),
        )
        self.executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=f"faiss-{entry.n}",
            initializer=faiss.omp_set_num_threads,
            initargs=(1,),
        )
        self.table: ChunkTable | None = None
        self.index: VectorIndex | None = None
        self.generation = 0  # changes made to the index (on the loop)
        self.saved_generation = 0  # changes the index file holds
        self.closing = False
        self.open_stats: dict[str, Any] = {}
        self._save_timer: asyncio.TimerHandle | None = None
        self._save_task: asyncio.Task | None = None
        self._rebuild_task: asyncio.Task | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        except RuntimeError as exc:
            if self.closing and "shutdown" in str(exc):  # the executor is gone: a race with unregister
                raise NotFoundError(
                    f"vector DB '{self.key}' was unregistered or the server is stopping"
                ) from None
            raise

    # -- open / close --------------------------------------------------------------------------

    async def open(self) -> None:
        started = time.perf_counter()
        loaded, added, dropped = await self._run(self._open_sync)
        # index_file: "loaded" (then caught_up / dropped say how far behind it was) or "built".
        self.open_stats = {
            "index_file": "loaded" if loaded else "built",
            "caught_up": added,
            "dropped": dropped,
        }
        log.info(
            "faiss_vector_db_opened",
            vector_db=self.key,
            chunks=self.index.live if self.index else 0,
            seconds=round(time.perf_counter() - started, 3),
            **self.open_stats,
        )
        if added or dropped or (not loaded and self.index is not None and self.index.ntotal):
            self._changed()

    def _open_sync(self) -> tuple[bool, int, int]:
        p = self.provider
        self.table = ChunkTable(p.path, p.prefix, self.entry.n, self.entry.dimension)
        index = VectorIndex.load(self.index_path, self.settings)
        loaded = index is not None
        if index is None:
            index = VectorIndex(self.settings)
        added, dropped = index.reconcile(self.table)
        self.index = index
        return loaded, added, dropped

    async def close(self, *, save: bool) -> None:
        self.closing = True
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        for task in (self._rebuild_task, self._save_task):
            if task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
        if save and self.index is not None and self.generation > self.saved_generation:
            await asyncio.to_thread(self.index.save, self.index_path)
            self.saved_generation = self.generation
        if self.table is not None:
            await self._run(self.table.close)
        await asyncio.to_thread(self.executor.shutdown, True)

    # -- operations ----------------------------------------------------------------------------

    async def insert(self, chunks: list[Chunk]) -> None:
        mirror = self.provider.mirror
        if mirror is None or self.meta is None:
            await self._run(self._insert_sync, chunks)
        else:
            async with self._write_lock:
                rows, matrix = await self._run(self._prepare_sync, chunks)
                synced = await mirror.write(self.key, self.meta, rows, [])
                await self._run(self._commit_sync, rows, matrix, synced)
        self._changed()

    def _insert_sync(self, chunks: list[Chunk]) -> None:
        self._commit_sync(*self._prepare_sync(chunks))

    def _prepare_sync(self, chunks: list[Chunk]) -> tuple[list[Row], np.ndarray]:
        """Check the chunks; returns their rows for storage and their embeddings as a matrix."""
        last: dict[str, int] = {}
        for i, chunk in enumerate(chunks):
            if not chunk.chunk_id:
                raise BadRequestError(f"chunks[{i}] has no chunk_id", param=f"chunks[{i}].chunk_id")
            if chunk.embedding is None:
                raise BadRequestError(f"chunks[{i}] has no embedding", param=f"chunks[{i}].embedding")
            last[chunk.chunk_id] = i  # of two chunks with one id, the last wins
        order = sorted(last.values())
        matrix = np.empty((len(order), self.entry.dimension), dtype=np.float32)
        for row, i in enumerate(order):
            embedding = chunks[i].embedding
            assert embedding is not None
            if len(embedding) != self.entry.dimension:
                raise BadRequestError(
                    f"chunks[{i}].embedding has {len(embedding)} values; vector DB '{self.key}' stores "
                    f"{self.entry.dimension}-dimensional embeddings",
                    param=f"chunks[{i}].embedding",
                )
            matrix[row] = embedding
        if not np.isfinite(matrix).all():
            bad = order[int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])]
            raise BadRequestError(
                f"chunks[{bad}].embedding has a NaN or infinite value", param=f"chunks[{bad}].embedding"
            )
        rows = [
            (
                chunks[i].chunk_id,
                chunks[i].model_dump_json(exclude={"embedding"}),
                content_to_text(chunks[i].content),
                matrix[row].tobytes(),
            )
            for row, i in enumerate(order)
        ]
        return rows, matrix

    def _commit_sync(self, rows: list[Row], matrix: np.ndarray, synced: str | None = None) -> None:
        assert self.table is not None and self.index is not None
        ids, replaced = self.table.upsert(rows, synced)
        self.index.add(ids, matrix)
        self.index.remove(replaced)

    async def delete(self, chunk_ids: list[str]) -> None:
        mirror = self.provider.mirror
        if mirror is None or self.meta is None:
            await self._run(self._delete_sync, chunk_ids)
        else:
            async with self._write_lock:
                synced = await mirror.write(self.key, self.meta, [], chunk_ids)
                await self._run(self._delete_sync, chunk_ids, synced)
        self._changed()

    def _delete_sync(self, chunk_ids: list[str], synced: str | None = None) -> None:
        assert self.table is not None and self.index is not None
        self.index.remove(self.table.delete(chunk_ids, synced))

    async def restore(self, rows: list[Row], synced: str) -> None:
        """Fill this (new, empty) local copy with the kvstore's chunks."""
        started = time.perf_counter()
        await self._run(self._restore_sync, rows, synced)
        log.info(
            "faiss_reloaded_from_kvstore",
            vector_db=self.key,
            chunks=len(rows),
            seconds=round(time.perf_counter() - started, 3),
        )
        self._changed()

    def _restore_sync(self, rows: list[Row], synced: str) -> None:
        dim = self.entry.dimension
        matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), dim)
        self._commit_sync(rows, matrix, synced)

    async def upload(self) -> None:
        """Copy this local vector DB, stored before the kvstore was postgres, to the kvstore."""
        mirror = self.provider.mirror
        assert mirror is not None and self.meta is not None and self.table is not None
        async with self._write_lock:
            rows = await self._run(self.table.rows)
            synced = await mirror.write(self.key, self.meta, rows, [])
            await self._run(self.table.mark, synced)
        log.info("faiss_uploaded_to_kvstore", vector_db=self.key, chunks=len(rows))

    async def query(self, query: ChunkQuery) -> QueryChunksResponse:
        return await self._run(self._query_sync, query)

    def _query_sync(self, query: ChunkQuery) -> QueryChunksResponse:
        assert self.table is not None and self.index is not None
        if query.mode == "keyword":
            hits = [(h.doc, h.score) for h in self.table.keyword(query.text, query.k, self.index.live)]
        else:
            if query.embedding is None:
                raise BadRequestError("a vector query needs an embedding", param="embedding")
            if len(query.embedding) != self.entry.dimension:
                raise BadRequestError(
                    f"the query embedding has {len(query.embedding)} values; vector DB '{self.key}' stores "
                    f"{self.entry.dimension}-dimensional embeddings",
                    param="embedding",
                )
            scores, ids = self.index.search(query.embedding, query.k)
            docs = self.table.docs(ids.tolist())
            hits = [(docs[i], s) for i, s in zip(ids.tolist(), scores.tolist(), strict=True) if i in docs]
        return QueryChunksResponse(
            chunks=[Chunk.model_validate_json(doc) for doc, _ in hits], scores=[s for _, s in hits]
        )

    # -- saving and rebuilding -----------------------------------------------------------------

    def _changed(self) -> None:
        """After a change to the index (on the loop): schedule a save; start a rebuild if due."""
        self.generation += 1
        if self.closing:
            return
        if self._save_timer is None and (self._save_task is None or self._save_task.done()):
            self._save_timer = asyncio.get_running_loop().call_later(
                self.provider.config.index_save_interval, self._start_save
            )
        index = self.index
        if (
            index is not None
            and self._rebuild_task is None
            and index.needs_rebuild(self.provider.config.tombstone_rebuild_ratio)
        ):
            self._rebuild_task = asyncio.get_running_loop().create_task(self._rebuild())

    def _start_save(self) -> None:
        self._save_timer = None
        if not self.closing:
            self._save_task = asyncio.get_running_loop().create_task(self._save())

    async def _save(self) -> None:
        generation, index = self.generation, self.index
        if index is None or generation <= self.saved_generation:
            return
        started = time.perf_counter()
        try:
            # Not on the vector DB's thread: searches go on meanwhile (both only read the index).
            await asyncio.to_thread(index.save, self.index_path)
        except Exception as exc:
            log.warning("faiss_index_save_failed", vector_db=self.key, error=str(exc))
        else:
            self.saved_generation = max(self.saved_generation, generation)
            log.debug(
                "faiss_index_saved",
                vector_db=self.key,
                entries=index.ntotal,
                seconds=round(time.perf_counter() - started, 3),
            )
        if self.generation > self.saved_generation and not self.closing and self._save_timer is None:
            self._save_timer = asyncio.get_running_loop().call_later(
                self.provider.config.index_save_interval, self._start_save
            )

    async def _rebuild(self) -> None:
        started = time.perf_counter()
        try:
            index = await asyncio.to_thread(self._build_sync)
            if index is None or self.closing:
                return
            added, dropped = await self._run(self._swap_sync, index)
        except Exception as exc:
            if not self.closing:
                log.warning("faiss_rebuild_failed", vector_db=self.key, error=str(exc))
            return
        finally:
            self._rebuild_task = None
        log.info(
            "faiss_index_rebuilt",
            vector_db=self.key,
            chunks=index.live,
            caught_up=added,
            dropped=dropped,
            seconds=round(time.perf_counter() - started, 3),
        )
        self._changed()

    def _build_sync(self) -> VectorIndex | None:
        """A fresh index of the stored chunks, built on a thread of its own with its own connection."""
        p = self.provider
        table = ChunkTable(p.path, p.prefix, self.entry.n, self.entry.dimension)
        try:
            return VectorIndex.build(self.settings, table.embeddings(), lambda: self.closing)
        finally:
            table.close()

    def _swap_sync(self, index: VectorIndex) -> tuple[int, int]:
        """On the vector DB's thread: catch the new index up with changes made while it was built."""
        assert self.table is not None
        counts = index.reconcile(self.table)
        self.index = index
        return counts
