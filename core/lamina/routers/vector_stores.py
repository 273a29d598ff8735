"""The OpenAI vector stores API, above the Vector IO router (see ``lamina.apis.vector_stores``).

Search asks the Vector IO router for ``max_num_results * CANDIDATES`` chunks, keeps those of the
store's completed files that pass ``filters`` (on the files' current attributes), and, when the
filters left fewer than ``max_num_results`` and the store holds more chunks, asks again for
``GROWTH`` times as many (up to every chunk the store holds, at most ``MAX_QUERY_CHUNKS``).
Results are best first: ``score`` is the search mode's (cosine similarity for ``vector``).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import structlog

from lamina.apis.common import content_to_text
from lamina.apis.vector_io import MAX_QUERY_CHUNKS, QueryChunksRequest, RegisterVectorDBRequest
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
    VectorStoreSearchResult,
)
from lamina.errors import BadRequestError, ConflictError, NotFoundError
from lamina.routers.vector_store_ingest import Ingestor, VectorStoreState, file_chunks, new_attach_id, now

log = structlog.get_logger(__name__)

CANDIDATES = 5  # chunks asked per result wanted (Llama Stack's CHUNK_MULTIPLIER)
GROWTH = 4  # how much more to ask for when filters leave too few
DAY = 86400


class VectorStoresRouter:
    def __init__(self, vector_dbs: Any, vector_io: Any, files: Any) -> None:
        self.vector_dbs = vector_dbs  # VectorDBsRoutingTable
        self.vector_io = vector_io  # VectorIORouter
        self.state = VectorStoreState()
        self.ingestor = Ingestor(self.state, files, vector_io, vector_dbs)
        vector_dbs.unregister_guards.append(self._keep_backing_vector_db)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, kv: Any) -> None:
        """Load every store and file; files left ``in_progress`` by a stop are ingested again."""
        await self.state.load(kv)
        resumed = 0
        for vs_id, files in self.state.files.items():
            for record in files.values():
                if record["status"] == "in_progress":
                    self.ingestor.schedule(vs_id, record["id"], record["attach_id"])
                    resumed += 1
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
        for file_id in dict.fromkeys(request.file_ids):
            await self._attach(vs_id, file_id, {}, strategy.model_dump())
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
        vs_id = request.vector_store_id
        store = self._active_store(vs_id)
        query = " ".join(request.query) if isinstance(request.query, list) else request.query
        if request.rewrite_query:
            query = re.sub(r"\s+", " ", query).strip()
        if not query.strip():
            raise BadRequestError("query has no text to search for", param="query")
        await self._touch(store)
        files = {
            fid: rec
            for fid, rec in self.state.files.get(vs_id, {}).items()
            if rec["status"] == "completed"
            and (request.filters is None or matches(rec.get("attributes") or {}, request.filters))
        }
        total = sum(rec.get("chunk_count", 0) for rec in self.state.files.get(vs_id, {}).values())
        ceiling = min(max(total, 1), MAX_QUERY_CHUNKS)
        ranking = request.ranking_options
        threshold = ranking.score_threshold if ranking and ranking.score_threshold is not None else 0.0
        wanted = request.max_num_results
        results: list[VectorStoreSearchResult] = []
        k = min(wanted * CANDIDATES, ceiling)
        while files:
            params = {"max_chunks": k, "mode": request.search_mode, "score_threshold": threshold}
            response = await self.vector_io.query_chunks(
                QueryChunksRequest(vector_db_id=vs_id, query=query, params=params)
            )
            results = []
            for chunk, score in zip(response.chunks, response.scores, strict=True):
                record = files.get(str(chunk.metadata.get("file_id", "")))
                if record is None or chunk.metadata.get("chunk_index", 0) >= record.get("chunk_count", 0):
                    continue
                text = content_to_text(chunk.content)
                results.append(
                    VectorStoreSearchResult(
                        file_id=record["id"],
                        filename=record.get("filename") or "",
                        score=score,
                        attributes=record.get("attributes") or {},
                        content=[VectorStoreContent(text=text)],
                    )
                )
            if len(results) >= wanted or len(response.chunks) < k or k >= ceiling:
                break
            k = min(k * GROWTH, ceiling)
        return VectorStoreSearchResponsePage(search_query=query, data=results[:wanted])

    # -- files ---------------------------------------------------------------------------------

    async def openai_attach_file_to_vector_store(self, request: AttachFileRequest) -> VectorStoreFileObject:
        store = self._active_store(request.vector_store_id)
        strategy = request.chunking_strategy or ChunkingStrategyAuto()
        await self._touch(store)
        return await self._attach(
            store["id"], request.file_id, request.attributes or {}, strategy.model_dump()
        )

    async def _attach(
        self, vs_id: str, file_id: str, attributes: dict[str, Any], strategy: dict[str, Any]
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


def _created(doc: dict[str, Any]) -> tuple[int, int, str]:
    return doc["created_at"], doc.get("created_ns", 0), doc["id"]


def _expires_at(store: dict[str, Any]) -> int | None:
    after = store.get("expires_after")
    if not after:
        return None
    return int(store.get("last_active_at") or store["created_at"]) + int(after["days"]) * DAY


def _file_object(record: dict[str, Any]) -> VectorStoreFileObject:
    return VectorStoreFileObject.model_validate(
        {k: record[k] for k in record if k in VectorStoreFileObject.model_fields and k != "object"}
    )


def _page(
    ids: list[str],
    order: str,
    after: str | None,
    before: str | None,
    limit: int,
    what: str,
    keep: Any = None,
) -> tuple[list[str], bool]:
    """A page of ``ids`` (sorted ascending) in ``order`` between the ``after``/``before`` cursors
    (ids of the list, whether ``keep`` keeps them or not), of those ``keep`` keeps."""
    if order == "desc":
        ids = ids[::-1]
    if after is not None:
        if after not in ids:
            raise BadRequestError(f"after: no {what} '{after}' in this list", param="after")
        ids = ids[ids.index(after) + 1 :]
    if before is not None:
        if before not in ids:
            raise BadRequestError(f"before: no {what} '{before}' in this list", param="before")
        ids = ids[: ids.index(before)]
    if keep is not None:
        ids = [i for i in ids if keep(i)]
    if before is not None and after is None:
        return ids[-limit:], len(ids) > limit
    return ids[:limit], len(ids) > limit


# -- filters ---------------------------------------------------------------------------------------


def matches(attributes: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Whether a file's attributes pass an OpenAI filter (already checked by ``check_filter``).

    A missing key never matches (``ne`` and ``nin`` included). ``gt``/``gte``/``lt``/``lte`` compare
    numbers with numbers and strings with strings; other pairs do not match. Booleans are not numbers.
    """
    kind = flt["type"]
    if kind == "and":
        return all(matches(attributes, f) for f in flt["filters"])
    if kind == "or":
        return any(matches(attributes, f) for f in flt["filters"])
    key, value = flt["key"], flt["value"]
    if key not in attributes:
        return False
    have = attributes[key]
    if kind == "eq":
        return _same(have, value)
    if kind == "ne":
        return not _same(have, value)
    if kind == "in":
        return any(_same(have, v) for v in value)
    if kind == "nin":
        return not any(_same(have, v) for v in value)
    if (_is_number(have) and _is_number(value)) or (isinstance(have, str) and isinstance(value, str)):
        return {"gt": have > value, "gte": have >= value, "lt": have < value, "lte": have <= value}[kind]
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b
