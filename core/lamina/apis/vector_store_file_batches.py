"""OpenAI vector store file batches: attach many files to a vector store at once and follow them together.

Served under ``/v1/openai/v1/vector_stores/{vector_store_id}/file_batches`` and the same routes at
``/v1/vector_stores/...`` (the logic: ``lamina.routers.vector_store_file_batches``).

- ``POST .../file_batches`` takes ``file_ids`` (with one ``attributes`` and ``chunking_strategy`` for
  all) or ``files`` (``[{file_id, attributes?, chunking_strategy?}]``, each its own), not both, at most
  ``MAX_BATCH_FILES``. Each file is attached as ``POST .../files`` would (it shows in the store's file
  list, attaching one already attached re-ingests it) and ingested in the background; the answer
  comes at once with ``status: in_progress`` (the OpenAI SDK's ``create_and_poll`` polls it).
- ``file_counts`` counts the batch's files by status; ``status`` is ``in_progress`` while one of them
  is, then ``completed`` (``failed`` when every file failed), or ``cancelled``. A file of the batch
  detached or attached again since no longer counts in it.
- ``POST .../cancel`` stops the batch's files still in progress (queued or running): they become
  ``cancelled`` and the chunks they wrote are deleted; files already done stay. Cancelling a batch
  that has ended changes nothing and answers it as it is.
- ``GET .../files`` lists the batch's files (``limit``, ``order``, ``after``, ``before``, ``filter``
  by status), as the store's file list does.
- Batches are kept in the metadata store with the rest of the vector store state. After a restart,
  even a crash, a batch goes on: its files still in progress are ingested again, files it had not
  attached yet are attached, and a batch cancelled before the stop has its files cancelled.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, Field, field_validator, model_validator

from lamina.access.declarations import reads, updates
from lamina.apis.vector_stores import (
    ChunkingStrategyAuto,
    ChunkingStrategyStatic,
    ListVectorStoreFilesRequest,
    VectorStoreFileCounts,
    VectorStoreListFilesResponse,
    _validated,
    check_attributes,
    parse_chunking_strategy,
)
from lamina.apis.webmethod import webmethod

MAX_BATCH_FILES = 2000  # OpenAI's limit


class VectorStoreFileBatchObject(BaseModel):
    id: str = Field(description="`vsfb_<32 hex>`.")
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: VectorStoreFileCounts


class FileBatchEntry(BaseModel):
    file_id: str = Field(min_length=1)
    attributes: dict[str, Any] | None = None
    chunking_strategy: ChunkingStrategyAuto | ChunkingStrategyStatic | None = None

    _chunking = field_validator("chunking_strategy", mode="before")(_validated(parse_chunking_strategy))
    _attributes = field_validator("attributes", mode="before")(_validated(check_attributes))


class CreateFileBatchRequest(BaseModel):
    vector_store_id: str = Field(min_length=1)
    file_ids: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BATCH_FILES,
        description=f"Files to attach (1 to {MAX_BATCH_FILES}); not with `files`.",
    )
    files: list[FileBatchEntry] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BATCH_FILES,
        description="Files with their own attributes / chunking_strategy; not with `file_ids`.",
    )
    attributes: dict[str, Any] | None = Field(default=None, description="For every file of `file_ids`.")
    chunking_strategy: ChunkingStrategyAuto | ChunkingStrategyStatic | None = Field(
        default=None, description="For every file of `file_ids` (default `auto`)."
    )

    _chunking = field_validator("chunking_strategy", mode="before")(_validated(parse_chunking_strategy))
    _attributes = field_validator("attributes", mode="before")(_validated(check_attributes))

    @model_validator(mode="after")
    def _one_list(self) -> CreateFileBatchRequest:
        if self.file_ids is not None and self.files is not None:
            raise ValueError("send either file_ids or files, not both (files carries per-file attributes)")
        if self.file_ids is None and self.files is None:
            raise ValueError("file_ids (or files) is required: the files to attach")
        return self

    def entries(self) -> list[FileBatchEntry]:
        """The batch's files, each with its attributes and chunking strategy (the first of a repeated id)."""
        if self.files is not None:
            entries = self.files
        else:
            entries = [
                FileBatchEntry(
                    file_id=f, attributes=self.attributes, chunking_strategy=self.chunking_strategy
                )
                for f in self.file_ids or []
            ]
        first: dict[str, FileBatchEntry] = {}
        for entry in entries:
            first.setdefault(entry.file_id, entry)
        return list(first.values())


class FileBatchRequest(BaseModel):
    vector_store_id: str = Field(min_length=1)
    batch_id: str = Field(min_length=1)


class ListFilesInBatchRequest(ListVectorStoreFilesRequest):
    batch_id: str = Field(min_length=1)


_VS = "/v1/openai/v1/vector_stores/{vector_store_id}/file_batches"
_ALIAS = "/v1/vector_stores/{vector_store_id}/file_batches"


class VectorStoreFileBatches(Protocol):
    """OpenAI vector store file batches: create, retrieve, cancel, list files."""

    @webmethod(
        "POST",
        _VS,
        aliases=(_ALIAS,),
        request=CreateFileBatchRequest,
        response=VectorStoreFileBatchObject,
        access=updates("vector_db", "vector_store_id", uses=(("file", "file_ids"),)),
    )
    async def openai_create_vector_store_file_batch(
        self, request: CreateFileBatchRequest
    ) -> VectorStoreFileBatchObject:
        """Attach files to a vector store as one batch; answers `in_progress` at once."""
        ...

    @webmethod(
        "GET",
        _VS + "/{batch_id}",
        aliases=(_ALIAS + "/{batch_id}",),
        request=FileBatchRequest,
        response=VectorStoreFileBatchObject,
        access=reads("vector_db", "vector_store_id"),
    )
    async def openai_retrieve_vector_store_file_batch(
        self, request: FileBatchRequest
    ) -> VectorStoreFileBatchObject:
        """Get a file batch: its status and file counts are current."""
        ...

    @webmethod(
        "POST",
        _VS + "/{batch_id}/cancel",
        aliases=(_ALIAS + "/{batch_id}/cancel",),
        request=FileBatchRequest,
        response=VectorStoreFileBatchObject,
        access=updates("vector_db", "vector_store_id"),
    )
    async def openai_cancel_vector_store_file_batch(
        self, request: FileBatchRequest
    ) -> VectorStoreFileBatchObject:
        """Cancel a file batch: its files still in progress become `cancelled`."""
        ...

    @webmethod(
        "GET",
        _VS + "/{batch_id}/files",
        aliases=(_ALIAS + "/{batch_id}/files",),
        request=ListFilesInBatchRequest,
        response=VectorStoreListFilesResponse,
        access=reads("vector_db", "vector_store_id"),
    )
    async def openai_list_files_in_vector_store_file_batch(
        self, request: ListFilesInBatchRequest
    ) -> VectorStoreListFilesResponse:
        """List a file batch's files (newest first by default), optionally only those in one status."""
        ...
