"""The OpenAI vector stores API, above the Vector IO router (see ``lamina.apis.vector_stores``).

Search: ``lamina.routers.vector_store_search``. Ingestion and state: ``lamina.routers.vector_store_ingest``.
File batches: ``lamina.routers.vector_store_file_batches``.

Attaching a file (and ``create`` with ``file_ids``) starts its ingestion in the background, then
waits for it up to ``vector_stores.ingestion_wait_seconds`` of the run config (default
``DEFAULT_INGESTION_WAIT`` seconds) before answering: an ordinary file answers ``completed`` (or
``failed``), as clients that cannot poll (llama-stack-client 0.2.12) and Llama Stack's tests expect,
while a big one answers ``in_progress`` and goes on in the background. The wait never cancels the
ingestion, not even when the client goes away.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import structlog

from lamina.apis.common import content_to_text
from lamina.apis.vector_io import RegisterVectorDBRequest
from lamina.apis.vector_stores import (
    AttachFileRequest,
    ChunkingStrategyAuto,
    CreateVectorStoreRequest,
    ExpiresAfter,
    ListVectorStoreFilesRequest,
    ListVectorStoresRequest,
    SearchVectorStoreRequest,
    UpdateVectorStoreFileRequest,
    UpdateVectorStoreRequest,
    VectorStoreContent,
    VectorStoreDeleteResponse,
    VectorStoreFileContentsResponse,
    VectorStoreFileCounts,
    VectorStoreFileDeleteResponse,
    VectorStoreFileObject,
    VectorStoreFileRequest,
    VectorStoreIdRequest,
    VectorStoreListFilesResponse,
    VectorStoreListResponse,
    VectorStoreObject,
    VectorStoreSearchResponsePage,
)
from lamina.config import VectorStoresConfig
from lamina.errors import BadRequestError, ConflictError, NotFoundError
from lamina.routers.vector_store_file_batches import FileBatchesRouter
from lamina.routers.vector_store_ingest import (
    Ingestor,
    VectorStoreState,
    file_chunks,
    new_attach_id,
    now,
)
from lamina.routers.vector_store_ingest import created_order as _created
from lamina.routers.vector_store_ingest import file_object as _file_object
from lamina.routers.vector_store_ingest import page_of as _page
from lamina.routers.vector_store_search import matches, search_store

__all__ = ["DEFAULT_INGESTION_WAIT", "VectorStoresRouter", "matches"]

log = structlog.get_logger(__name__)

DAY = 86400
# Seconds an attach waits for its ingestion before answering in_progress (the run config's default).
DEFAULT_INGESTION_WAIT: float = VectorStoresConfig.model_fields["ingestion_wait_seconds"].default


class VectorStoresRouter:
    def __init__(
        self, vector_dbs: Any, vector_io: Any, files: Any, ingestion_wait: float = DEFAULT_INGESTION_WAIT
    ) -> None:
        self.vector_dbs = vector_dbs  # VectorDBsRoutingTable
        self.ingestion_wait = ingestion_wait
        self.vector_io = vector_io  # VectorIORouter
        self.state = VectorStoreState()
        self.ingestor = Ingestor(self.state, files, vector_io, vector_dbs)
        self.file_batches = FileBatchesRouter(self)
        vector_dbs.unregister_guards.append(self._keep_backing_vector_db)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, kv: Any) -> None:
        """Load every store and file; files left ``in_progress`` by a stop are ingested again."""
        await self.state.load(kv)
        resumed = 0
        for vs_id, files in self.state.files.items():
            for record in list(files.values()):
                if record["status"] != "in_progress":
                    continue
                if self.file_batches.cancelled(record):  # cancelled before the stop finished it
                    await self.ingestor.stop(vs_id, record["id"], record["attach_id"])
                    continue
                self.ingestor.schedule(vs_id, record["id"], record["attach_id"])
                resumed += 1
        await self.file_batches.resume()
        if self.state.stores:
            log.info("vector_stores_loaded", stores=len(self.state.stores), resumed_files=resumed)

    async def shutdown(self) -> None:
        """Stop ingesting (files in progress stay ``in_progress``, resumed at the next start)."""
        await self.ingestor.shutdown()

    async def _keep_backing_vector_db(self, vector_db_id: str) -> None:
        """A vector store's vector DB goes with its store: DELETE /v1/vector-dbs refuses it."""
        if vector_db_id in self.state.stores:
            raise ConflictError(
                f"vector DB '{vector_db_id}' holds the chunks of vector store '{vector_db_id}'; delete the "
                f"vector store instead (DELETE /v1/openai/v1/vector_stores/{vector_db_id}), which drops both",
                param="vector_db_id",
            )

    # -- vector stores -------------------------------------------------------------------------

    async def openai_create_vector_store(self, request: CreateVectorStoreRequest) -> VectorStoreObject:
        model, dimension = request.embedding_model, request.embedding_dimension
        if model is None:
            model, dimension = await self._default_embedding_model(dimension)
        vs_id = f"vs_{uuid.uuid4().hex}"
        vector_db = await self.vector_dbs.register_vector_db(
            RegisterVectorDBRequest(
                vector_db_id=vs_id,
                embedding_model=model,
                embedding_dimension=dimension,
                provider_id=request.provider_id,
                provider_vector_db_id=request.provider_vector_db_id,
                vector_db_name=request.name,
            )
        )
        created = now()
        store = {
            "id": vs_id,
            "created_at": created,
            "created_ns": time.time_ns(),  # orders stores created within one second
            "name": request.name,
            "description": request.description,
            "metadata": request.metadata or {},
            "expires_after": request.expires_after.model_dump() if request.expires_after else None,
            "last_active_at": created,
            "embedding_model": vector_db.embedding_model,
            "embedding_dimension": vector_db.embedding_dimension,
            "provider_id": vector_db.provider_id,
        }
        await self.state.put_store(store)
        strategy = request.chunking_strategy or ChunkingStrategyAuto()
        file_ids = list(dict.fromkeys(request.file_ids))
        for file_id in file_ids:
            await self._attach(vs_id, file_id, {}, strategy.model_dump())
        await self.ingestor.wait([(vs_id, f) for f in file_ids], self.ingestion_wait)
        return self._store_object(vs_id)

    async def _default_embedding_model(self, dimension: int | None) -> tuple[str, int | None]:
        embedders = [m for m in await self.vector_dbs.models.list() if m.model_type == "embedding"]
        if not embedders:
            raise BadRequestError(
                "embedding_model was not given and no embedding model is registered; register one "
                "(inline::sentence-transformers serves all-MiniLM-L6-v2) or name one in embedding_model",
                param="embedding_model",
            )
        return embedders[0].identifier, dimension

    async def openai_list_vector_stores(self, request: ListVectorStoresRequest) -> VectorStoreListResponse:
        ids = sorted(self.state.stores, key=lambda i: _created(self.state.stores[i]))
        page, has_more = _page(
            ids, request.order, request.after, request.before, request.limit, "vector store"
        )
        data = [self._store_object(i) for i in page]
        return VectorStoreListResponse(
            data=data,
            first_id=page[0] if page else None,
            last_id=page[-1] if page else None,
            has_more=has_more,
        )

    async def openai_retrieve_vector_store(self, request: VectorStoreIdRequest) -> VectorStoreObject:
        self._store(request.vector_store_id)
        return self._store_object(request.vector_store_id)

    async def openai_update_vector_store(self, request: UpdateVectorStoreRequest) -> VectorStoreObject:
        store = dict(self._store(request.vector_store_id))
        sent = request.model_fields_set
        if "name" in sent:
            store["name"] = request.name
        if "expires_after" in sent:
            store["expires_after"] = request.expires_after.model_dump() if request.expires_after else None
        if "metadata" in sent:
            store["metadata"] = request.metadata or {}
        store["last_active_at"] = now()
        await self.state.put_store(store)
        return self._store_object(store["id"])

    async def openai_delete_vector_store(self, request: VectorStoreIdRequest) -> VectorStoreDeleteResponse:
        vs_id = request.vector_store_id
        self._store(vs_id)
        for file_id in list(self.state.files.get(vs_id, {})):
            await self.ingestor.cancel(vs_id, file_id)
        try:
            await self.vector_dbs.remove(vs_id)  # drops every chunk
        except NotFoundError:
            log.warning("vector_store_vector_db_missing", vector_store_id=vs_id)
        await self.state.drop_store(vs_id)
        return VectorStoreDeleteResponse(id=vs_id)

    # -- search --------------------------------------------------------------------------------

    async def openai_search_vector_store(
        self, request: SearchVectorStoreRequest
    ) -> VectorStoreSearchResponsePage:
        store = self._active_store(request.vector_store_id)
        await self._touch(store)
        return await search_store(self.vector_io, self.state.files.get(store["id"], {}), request)

    # -- files ---------------------------------------------------------------------------------

    async def openai_attach_file_to_vector_store(self, request: AttachFileRequest) -> VectorStoreFileObject:
        store = self._active_store(request.vector_store_id)
        strategy = request.chunking_strategy or ChunkingStrategyAuto()
        await self._touch(store)
        vs_id, file_id = store["id"], request.file_id
        attached = await self._attach(vs_id, file_id, request.attributes or {}, strategy.model_dump())
        await self.ingestor.wait([(vs_id, file_id)], self.ingestion_wait)
        record = self.state.files.get(vs_id, {}).get(file_id)
        return _file_object(record) if record is not None else attached

    async def _attach(
        self,
        vs_id: str,
        file_id: str,
        attributes: dict[str, Any],
        strategy: dict[str, Any],
        batch_id: str | None = None,
    ) -> VectorStoreFileObject:
        """Record the file ``in_progress`` and start its ingestion (attaching again re-ingests it)."""
        await self.ingestor.cancel(vs_id, file_id)
        previous = self.state.files.get(vs_id, {}).get(file_id)  # its chunks are replaced or deleted
        record = {
            "id": file_id,
            "vector_store_id": vs_id,
            "attributes": attributes,
            "chunking_strategy": strategy,
            "created_at": now(),
            "created_ns": time.time_ns(),
            "status": "in_progress",
            "last_error": None,
            "usage_bytes": 0,
            "filename": previous.get("filename", "") if previous else "",
            "chunk_count": previous.get("chunk_count", 0) if previous else 0,
            "attach_id": new_attach_id(),
        }
        if batch_id is not None:
            record["batch_id"] = batch_id
        await self.state.put_file(record)
        self.ingestor.schedule(vs_id, file_id, record["attach_id"])
        return _file_object(record)

    async def openai_list_files_in_vector_store(
        self, request: ListVectorStoreFilesRequest
    ) -> VectorStoreListFilesResponse:
        self._store(request.vector_store_id)
        records = self.state.files.get(request.vector_store_id, {})
        ids = sorted(records, key=lambda i: _created(records[i]))
        keep = None if request.filter is None else (lambda i: records[i]["status"] == request.filter)
        page, has_more = _page(ids, request.order, request.after, request.before, request.limit, "file", keep)
        return VectorStoreListFilesResponse(
            data=[_file_object(records[i]) for i in page],
            first_id=page[0] if page else None,
            last_id=page[-1] if page else None,
            has_more=has_more,
        )

    async def openai_retrieve_vector_store_file(
        self, request: VectorStoreFileRequest
    ) -> VectorStoreFileObject:
        return _file_object(self._file(request.vector_store_id, request.file_id))

    async def openai_retrieve_vector_store_file_contents(
        self, request: VectorStoreFileRequest
    ) -> VectorStoreFileContentsResponse:
        record = self._file(request.vector_store_id, request.file_id)
        content: list[VectorStoreContent] = []
        if record["status"] == "completed":
            text = await self.state.get_text(record["vector_store_id"], record["id"])
            if text is not None:
                chunks = await asyncio.to_thread(file_chunks, record, text)
                content = [VectorStoreContent(text=content_to_text(c.content)) for c in chunks]
        return VectorStoreFileContentsResponse(
            file_id=record["id"],
            filename=record.get("filename") or "",
            attributes=record.get("attributes") or {},
            content=content,
            data=content,
        )

    async def openai_update_vector_store_file(
        self, request: UpdateVectorStoreFileRequest
    ) -> VectorStoreFileObject:
        record = {**self._file(request.vector_store_id, request.file_id), "attributes": request.attributes}
        await self.state.put_file(record)
        return _file_object(record)

    async def openai_delete_vector_store_file(
        self, request: VectorStoreFileRequest
    ) -> VectorStoreFileDeleteResponse:
        record = self._file(request.vector_store_id, request.file_id)
        vs_id, file_id = record["vector_store_id"], record["id"]
        await self.ingestor.cancel(vs_id, file_id)
        record = self.state.files.get(vs_id, {}).get(file_id, record)
        try:
            await self.ingestor.delete_chunks(vs_id, file_id, record.get("chunk_count", 0))
        except NotFoundError:  # the vector DB was unregistered: no chunks are left
            pass
        await self.state.drop_file(vs_id, file_id)
        return VectorStoreFileDeleteResponse(id=file_id)

    # -- helpers -------------------------------------------------------------------------------

    def _store(self, vs_id: str) -> dict[str, Any]:
        store = self.state.stores.get(vs_id)
        if store is None:
            raise NotFoundError(
                f"vector store '{vs_id}' does not exist; list them with GET /v1/openai/v1/vector_stores",
                param="vector_store_id",
            )
        return store

    def _active_store(self, vs_id: str) -> dict[str, Any]:
        store = self._store(vs_id)
        expires_at = _expires_at(store)
        if expires_at is not None and now() >= expires_at:
            raise BadRequestError(
                f"vector store '{vs_id}' expired at {expires_at} (expires_after: {store['expires_after']}); "
                f"update it to make it active again",
                param="vector_store_id",
            )
        return store

    async def _touch(self, store: dict[str, Any]) -> None:
        """Move ``last_active_at`` (written at most once a minute unless the store expires sooner)."""
        t = now()
        if t - (store.get("last_active_at") or 0) >= 60 or store.get("expires_after"):
            await self.state.put_store({**store, "last_active_at": t})

    def _file(self, vs_id: str, file_id: str) -> dict[str, Any]:
        self._store(vs_id)
        record = self.state.files.get(vs_id, {}).get(file_id)
        if record is None:
            raise NotFoundError(
                f"file '{file_id}' is not attached to vector store '{vs_id}'; list its files with "
                f"GET /v1/openai/v1/vector_stores/{vs_id}/files",
                param="file_id",
            )
        return record

    def _store_object(self, vs_id: str) -> VectorStoreObject:
        store = self.state.stores[vs_id]
        records = self.state.files.get(vs_id, {}).values()
        counts = VectorStoreFileCounts(total=len(records))
        for record in records:
            setattr(counts, record["status"], getattr(counts, record["status"]) + 1)
        expires_at = _expires_at(store)
        if expires_at is not None and now() >= expires_at:
            status = "expired"
        else:
            status = "in_progress" if counts.in_progress else "completed"
        return VectorStoreObject(
            id=vs_id,
            created_at=store["created_at"],
            name=store.get("name"),
            description=store.get("description"),
            usage_bytes=sum(r.get("usage_bytes", 0) for r in records if r["status"] == "completed"),
            file_counts=counts,
            status=status,
            expires_after=ExpiresAfter.model_validate(store["expires_after"])
            if store.get("expires_after")
            else None,
            expires_at=expires_at,
            last_active_at=store.get("last_active_at"),
            metadata=store.get("metadata") or {},
            embedding_model=store.get("embedding_model"),
            embedding_dimension=store.get("embedding_dimension"),
            provider_id=store.get("provider_id"),
        )


def _expires_at(store: dict[str, Any]) -> int | None:
    after = store.get("expires_after")
    if not after:
        return None
    return int(store.get("last_active_at") or store["created_at"]) + int(after["days"]) * DAY
