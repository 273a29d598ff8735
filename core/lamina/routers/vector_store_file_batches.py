"""OpenAI vector store file batches (see ``lamina.apis.vector_store_file_batches``).

A batch is one record in the metadata store (``vector_store_batch:<vs_id>:<batch_id>``): its files
with their attributes and chunking strategy, ``status`` (``in_progress`` or ``cancelled``) and
``attached`` (every file was attached). Its files are ordinary vector store files whose record
carries ``batch_id``; ingestion is the vector stores' own (``lamina.routers.vector_store_ingest``),
so the batch's status and counts are computed from its files' records and cannot be left stale.

Order of writes, for restarts: the batch is written before its files are attached, and ``attached``
after; cancelling writes ``cancelled`` before it stops the files. At start (``resume``), a file of a
cancelled batch still ``in_progress`` is cancelled instead of ingested again, and a batch cut short
while attaching attaches the rest.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from lamina.apis.vector_store_file_batches import (
    CreateFileBatchRequest,
    FileBatchRequest,
    ListFilesInBatchRequest,
    VectorStoreFileBatchObject,
)
from lamina.apis.vector_stores import (
    ChunkingStrategyAuto,
    VectorStoreFileCounts,
    VectorStoreListFilesResponse,
)
from lamina.errors import NotFoundError
from lamina.routers.vector_store_ingest import created_order, file_object, now, page_of

if TYPE_CHECKING:
    from lamina.routers.vector_stores import VectorStoresRouter

log = structlog.get_logger(__name__)


class FileBatchesRouter:
    def __init__(self, stores: VectorStoresRouter) -> None:
        self.stores = stores
        self.state = stores.state
        self.ingestor = stores.ingestor

    # -- lifecycle -----------------------------------------------------------------------------

    def cancelled(self, record: dict[str, Any]) -> bool:
        """Whether the file's record belongs to a cancelled batch."""
        batch = self.state.batches.get(record["vector_store_id"], {}).get(record.get("batch_id") or "")
        return batch is not None and batch["status"] == "cancelled"

    async def resume(self) -> None:
        """Attach the files of batches a stop cut short while attaching (their other files resume
        as every file in progress does)."""
        for vs_id, batches in self.state.batches.items():
            for batch in list(batches.values()):
                if batch["status"] == "in_progress" and not batch.get("attached"):
                    log.info("vector_store_file_batch_resumed", vector_store_id=vs_id, batch_id=batch["id"])
                    await self._attach_all(batch)

    # -- routes --------------------------------------------------------------------------------

    async def openai_create_vector_store_file_batch(
        self, request: CreateFileBatchRequest
    ) -> VectorStoreFileBatchObject:
        store = self.stores._active_store(request.vector_store_id)
        await self.stores._touch(store)
        files = [
            {
                "file_id": entry.file_id,
                "attributes": entry.attributes or {},
                "chunking_strategy": (entry.chunking_strategy or ChunkingStrategyAuto()).model_dump(),
            }
            for entry in request.entries()
        ]
        batch = {
            "id": f"vsfb_{uuid.uuid4().hex}",
            "vector_store_id": store["id"],
            "created_at": now(),
            "created_ns": time.time_ns(),
            "status": "in_progress",
            "attached": False,
            "files": files,
        }
        await self.state.put_batch(batch)
        await self._attach_all(batch)
        return self._object(self.state.batches[store["id"]][batch["id"]])

    async def openai_retrieve_vector_store_file_batch(
        self, request: FileBatchRequest
    ) -> VectorStoreFileBatchObject:
        return self._object(self._batch(request.vector_store_id, request.batch_id))

    async def openai_cancel_vector_store_file_batch(
        self, request: FileBatchRequest
    ) -> VectorStoreFileBatchObject:
        batch = self._batch(request.vector_store_id, request.batch_id)
        if self._object(batch).status != "in_progress":
            return self._object(batch)  # it has ended: nothing to stop
        batch = {**batch, "status": "cancelled", "cancelled_at": now()}
        await self.state.put_batch(batch)  # first: a stop in the middle still finds the batch cancelled
        vs_id = batch["vector_store_id"]
        stopped = 0
        for file_id in self._file_ids(batch):
            record = self.state.files[vs_id][file_id]
            if record["status"] == "in_progress":
                await self.ingestor.stop(vs_id, file_id, record["attach_id"])
                stopped += 1
        log.info(
            "vector_store_file_batch_cancelled", vector_store_id=vs_id, batch_id=batch["id"], files=stopped
        )
        return self._object(batch)

    async def openai_list_files_in_vector_store_file_batch(
        self, request: ListFilesInBatchRequest
    ) -> VectorStoreListFilesResponse:
        batch = self._batch(request.vector_store_id, request.batch_id)
        records = self.state.files.get(batch["vector_store_id"], {})
        ids = sorted(self._file_ids(batch), key=lambda i: created_order(records[i]))
        keep = None if request.filter is None else (lambda i: records[i]["status"] == request.filter)
        page, has_more = page_of(
            ids, request.order, request.after, request.before, request.limit, "file", keep
        )
        return VectorStoreListFilesResponse(
            data=[file_object(records[i]) for i in page],
            first_id=page[0] if page else None,
            last_id=page[-1] if page else None,
            has_more=has_more,
        )

    # -- helpers -------------------------------------------------------------------------------

    async def _attach_all(self, batch: dict[str, Any]) -> None:
        vs_id, batch_id = batch["vector_store_id"], batch["id"]
        for spec in batch["files"]:
            current = self.state.batches.get(vs_id, {}).get(batch_id)
            if current is None or current["status"] != "in_progress":
                return  # cancelled (or its store deleted) meanwhile: attach no more
            record = self.state.files.get(vs_id, {}).get(spec["file_id"])
            if record is not None and record.get("batch_id") == batch_id:
                continue  # attached before a restart
            await self.stores._attach(
                vs_id, spec["file_id"], spec["attributes"], spec["chunking_strategy"], batch_id=batch_id
            )
            current = self.state.batches.get(vs_id, {}).get(batch_id)
            if current is not None and current["status"] == "cancelled":
                # cancelled while this file was being attached: the cancel did not see it yet
                record = self.state.files[vs_id][spec["file_id"]]
                await self.ingestor.stop(vs_id, spec["file_id"], record["attach_id"])
                return
        current = self.state.batches.get(vs_id, {}).get(batch_id)
        if current is not None:
            await self.state.put_batch({**current, "attached": True})

    def _batch(self, vs_id: str, batch_id: str) -> dict[str, Any]:
        self.stores._store(vs_id)
        batch = self.state.batches.get(vs_id, {}).get(batch_id)
        if batch is None:
            raise NotFoundError(
                f"file batch '{batch_id}' does not exist in vector store '{vs_id}'; create one with "
                f"POST /v1/openai/v1/vector_stores/{vs_id}/file_batches",
                param="batch_id",
            )
        return batch

    def _file_ids(self, batch: dict[str, Any]) -> list[str]:
        """The batch's files that are still its own (not detached nor attached again since)."""
        records = self.state.files.get(batch["vector_store_id"], {})
        ids = (spec["file_id"] for spec in batch["files"])
        return [i for i in ids if i in records and records[i].get("batch_id") == batch["id"]]

    def _object(self, batch: dict[str, Any]) -> VectorStoreFileBatchObject:
        records = self.state.files.get(batch["vector_store_id"], {})
        counts = VectorStoreFileCounts()
        for file_id in self._file_ids(batch):
            status = records[file_id]["status"]
            setattr(counts, status, getattr(counts, status) + 1)
            counts.total += 1
        if batch["status"] == "cancelled":
            status = "cancelled"
        elif counts.in_progress or not batch.get("attached"):
            status = "in_progress"
        elif counts.total and counts.failed == counts.total:
            status = "failed"
        else:
            status = "completed"
        return VectorStoreFileBatchObject(
            id=batch["id"],
            created_at=batch["created_at"],
            vector_store_id=batch["vector_store_id"],
            status=status,
            file_counts=counts,
        )
