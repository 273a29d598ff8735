"""Vector stores' state (in the metadata store) and the background ingestion of their files.

State: every vector store and vector store file is one JSON value in the metadata store (the KV
store the resource registry uses), kept in memory too; a file's extracted text is one more value,
so its chunks can be listed (``.../content``) without asking the Vector IO provider.

Keys: ``vector_store:<vs_id>``, ``vector_store_file:<vs_id>:<file_id>``,
``vector_store_text:<vs_id>:<file_id>`` and ``vector_store_batch:<vs_id>:<batch_id>`` (file batches).

Ingestion: ``Ingestor.schedule`` starts one asyncio task per attached file; at most
``INGEST_CONCURRENCY`` run at once (the others wait), never on a request's path: ``wait`` lets an
attach wait for a task up to a bound without ever cancelling it, and ``stop`` cancels one (a file
batch's cancel) and marks the file ``cancelled``. A task reads the
file through the Files router (at most ``MAX_FILE_BYTES``), extracts its text and cuts it into
chunks in a worker thread, records how many chunks it will write (so a restart or a delete can
remove them), inserts them through the Vector IO router ``INSERT_BATCH`` at a time (the router
embeds them), then marks the file ``completed``; any failure marks it ``failed`` with the reason in
``last_error`` and removes the chunks it wrote. Every step checks that the attachment it works for
is still the current one (a file deleted or attached again meanwhile is left alone).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import structlog

from lamina.apis.binary import BinaryResponse
from lamina.apis.files import FileIdRequest
from lamina.apis.vector_io import InsertChunksRequest
from lamina.apis.vector_stores import VectorStoreFileObject, chunk_sizes, parse_chunking_strategy
from lamina.errors import BadRequestError, LaminaError, NotFoundError
from lamina.providers.documents.chunking import chunk_id_for, make_overlapped_chunks
from lamina.providers.documents.parsing import guess_type, parse_bytes
from lamina.storage import KVStore

log = structlog.get_logger(__name__)

INGEST_CONCURRENCY = 2  # files ingested at once, over every vector store
INSERT_BATCH = 256  # chunks per Vector IO insert
MAX_FILE_BYTES = 50 * 1024 * 1024  # a larger file fails (its text could not be held and chunked at once)

_STORE, _FILE, _TEXT = "vector_store:", "vector_store_file:", "vector_store_text:"
_BATCH = "vector_store_batch:"


def now() -> int:
    return int(time.time())


class VectorStoreState:
    """Vector stores and their files: in memory, written through to the metadata store."""

    def __init__(self) -> None:
        self.kv: KVStore | None = None
        self.stores: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, dict[str, Any]]] = {}  # vs_id -> file_id -> record
        self.batches: dict[str, dict[str, dict[str, Any]]] = {}  # vs_id -> batch_id -> record

    async def load(self, kv: KVStore) -> None:
        self.kv = kv
        self.stores = {key[len(_STORE) :]: json.loads(v) for key, v in await kv.items_with_prefix(_STORE)}
        self.files = {vs_id: {} for vs_id in self.stores}
        for _key, value in await kv.items_with_prefix(_FILE):
            record = json.loads(value)
            if record["vector_store_id"] in self.files:
                self.files[record["vector_store_id"]][record["id"]] = record
        self.batches = {vs_id: {} for vs_id in self.stores}
        for _key, value in await kv.items_with_prefix(_BATCH):
            record = json.loads(value)
            if record["vector_store_id"] in self.batches:
                self.batches[record["vector_store_id"]][record["id"]] = record

    def _kv(self) -> KVStore:
        if self.kv is None:
            raise LaminaError("vector stores are used before the server started")
        return self.kv

    async def put_store(self, store: dict[str, Any]) -> None:
        await self._kv().set(_STORE + store["id"], json.dumps(store))
        self.stores[store["id"]] = store
        self.files.setdefault(store["id"], {})
        self.batches.setdefault(store["id"], {})

    async def drop_store(self, vs_id: str) -> None:
        for file_id in list(self.files.get(vs_id, {})):
            await self.drop_file(vs_id, file_id)
        for batch_id in list(self.batches.get(vs_id, {})):
            await self._kv().delete(f"{_BATCH}{vs_id}:{batch_id}")
        await self._kv().delete(_STORE + vs_id)
        self.stores.pop(vs_id, None)
        self.files.pop(vs_id, None)
        self.batches.pop(vs_id, None)

    async def put_file(self, record: dict[str, Any]) -> None:
        vs_id = record["vector_store_id"]
        await self._kv().set(f"{_FILE}{vs_id}:{record['id']}", json.dumps(record))
        self.files.setdefault(vs_id, {})[record["id"]] = record

    async def drop_file(self, vs_id: str, file_id: str) -> None:
        await self._kv().delete(f"{_FILE}{vs_id}:{file_id}")
        await self._kv().delete(f"{_TEXT}{vs_id}:{file_id}")
        self.files.get(vs_id, {}).pop(file_id, None)

    async def put_batch(self, record: dict[str, Any]) -> None:
        vs_id = record["vector_store_id"]
        self.batches.setdefault(vs_id, {})[record["id"]] = record  # first: readers see the newest
        await self._kv().set(f"{_BATCH}{vs_id}:{record['id']}", json.dumps(record))

    async def put_text(self, vs_id: str, file_id: str, text: str) -> None:
        await self._kv().set(f"{_TEXT}{vs_id}:{file_id}", text)

    async def get_text(self, vs_id: str, file_id: str) -> str | None:
        return await self._kv().get(f"{_TEXT}{vs_id}:{file_id}")

    def current(self, vs_id: str, file_id: str, attach_id: str) -> dict[str, Any] | None:
        """The file's record if ``attach_id`` is still its current attachment."""
        record = self.files.get(vs_id, {}).get(file_id)
        return record if record is not None and record.get("attach_id") == attach_id else None


def file_chunks(record: dict[str, Any], text: str) -> list[Any]:
    """The chunks of a file's text, as ingestion cut them (deterministic: same text, same chunks)."""
    size, overlap = chunk_sizes(parse_chunking_strategy(record.get("chunking_strategy")))
    extra = {
        "file_id": record["id"],
        "filename": record.get("filename") or "",
        "vector_store_id": record["vector_store_id"],
    }
    return make_overlapped_chunks(
        record["id"], text, size, overlap, record.get("attributes") or {}, extra_metadata=extra
    )


async def read_file(files: Any, file_id: str, limit: int = MAX_FILE_BYTES) -> tuple[str, str | None, bytes]:
    """(filename, content type, bytes) of a file of the Files API."""
    meta = await files.openai_retrieve_file(FileIdRequest(file_id=file_id))
    if meta.bytes > limit:
        raise LaminaError(
            f"file '{file_id}' has {meta.bytes} bytes; vector stores take files of at most {limit}"
        )
    content: BinaryResponse = await files.openai_retrieve_file_content(FileIdRequest(file_id=file_id))
    if content.body is not None:
        data = content.body
    elif content.path is not None:
        data = await asyncio.to_thread(content.path.read_bytes)
    else:
        parts, size = [], 0
        async for part in content.chunks or _empty():
            size += len(part)
            if size > limit:
                raise LaminaError(f"file '{file_id}' is larger than {limit} bytes, the vector stores' limit")
            parts.append(part)
        data = b"".join(parts)
    if len(data) > limit:
        raise LaminaError(
            f"file '{file_id}' has {len(data)} bytes; vector stores take files of at most {limit}"
        )
    return meta.filename, content.content_type, data


async def _empty() -> Any:
    return
    yield b""


def extract_text(data: bytes, content_type: str | None, filename: str) -> str:
    """The file's text: its type from its name's extension, else its content type (see documents)."""
    mime = guess_type(filename) or content_type
    charset = None
    if mime and ";" in mime:
        mime, _, params = mime.partition(";")
        charset = params.partition("charset=")[2].strip() or None
    return parse_bytes(data, mime, charset=charset, filename=filename, param="file")


class Ingestor:
    """Background ingestion of vector store files (see the module docstring)."""

    def __init__(
        self,
        state: VectorStoreState,
        files: Any,
        vector_io: Any,
        vector_dbs: Any,
        concurrency: int = INGEST_CONCURRENCY,
    ) -> None:
        self.state = state
        self.files = files  # the Files router
        self.vector_io = vector_io  # the Vector IO router
        self.vector_dbs = vector_dbs  # the vector DBs routing table (to reach a provider's delete_chunks)
        self.gate = asyncio.Semaphore(concurrency)
        self.tasks: dict[tuple[str, str], asyncio.Task] = {}

    def schedule(self, vs_id: str, file_id: str, attach_id: str) -> None:
        key = (vs_id, file_id)
        task = asyncio.create_task(
            self._run(vs_id, file_id, attach_id), name=f"lamina-ingest-{vs_id}-{file_id}"
        )
        self.tasks[key] = task
        task.add_done_callback(lambda t: self.tasks.pop(key, None) if self.tasks.get(key) is t else None)

    async def cancel(self, vs_id: str, file_id: str) -> None:
        task = self.tasks.pop((vs_id, file_id), None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait(self, keys: list[tuple[str, str]], seconds: float) -> None:
        """Wait up to ``seconds`` for the ingestion of files ``(vs_id, file_id)`` to end.

        ``asyncio.wait`` never cancels what it waits for: neither the timeout nor a cancelled caller
        (a client that went away) stops an ingestion.
        """
        tasks = {self.tasks[key] for key in keys if key in self.tasks}
        if tasks and seconds > 0:
            await asyncio.wait(tasks, timeout=seconds)

    async def shutdown(self) -> None:
        tasks, self.tasks = list(self.tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def delete_chunks(self, vs_id: str, file_id: str, count: int, start: int = 0) -> None:
        """Delete the file's chunks ``start`` to ``count - 1``."""
        if count <= start:
            return
        vector_db, provider = await self.vector_dbs.resolve(vs_id)
        await provider.delete_chunks(vector_db, [chunk_id_for(file_id, i) for i in range(start, count)])

    async def _run(self, vs_id: str, file_id: str, attach_id: str) -> None:
        async with self.gate:
            try:
                await self._ingest(vs_id, file_id, attach_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = exc.message if isinstance(exc, LaminaError) else f"{type(exc).__name__}: {exc}"
                if isinstance(exc, NotFoundError):
                    message = f"file '{file_id}' could not be read from the Files API: {message}"
                log.warning("vector_store_file_failed", vector_store_id=vs_id, file_id=file_id, error=message)
                await self._fail(vs_id, file_id, attach_id, message)

    async def _update(self, vs_id: str, file_id: str, attach_id: str, **fields: Any) -> dict[str, Any] | None:
        """Change fields of the file's current record (None when the attachment is gone)."""
        record = self.state.current(vs_id, file_id, attach_id)
        if record is None:
            return None
        record = {**record, **fields}
        await self.state.put_file(record)
        return record

    async def _ingest(self, vs_id: str, file_id: str, attach_id: str) -> None:
        if self.state.current(vs_id, file_id, attach_id) is None:
            return
        filename, content_type, data = await read_file(self.files, file_id)
        record = await self._update(vs_id, file_id, attach_id, filename=filename)
        if record is None:
            return
        text = await asyncio.to_thread(extract_text, data, content_type, filename)
        chunks = await asyncio.to_thread(file_chunks, record, text)
        if not chunks:
            raise LaminaError(f"no text could be extracted from file '{filename}' ({file_id})")
        previous = record.get("chunk_count", 0)  # chunks an earlier attempt may have written
        if await self._update(vs_id, file_id, attach_id, chunk_count=max(previous, len(chunks))) is None:
            return
        for start in range(0, len(chunks), INSERT_BATCH):
            batch = chunks[start : start + INSERT_BATCH]
            await self.vector_io.insert_chunks(InsertChunksRequest(vector_db_id=vs_id, chunks=batch))
            if self.state.current(vs_id, file_id, attach_id) is None:
                return
        await self.delete_chunks(vs_id, file_id, previous, start=len(chunks))  # stale ones, if any
        await self.state.put_text(vs_id, file_id, text)
        done = await self._update(
            vs_id,
            file_id,
            attach_id,
            status="completed",
            last_error=None,
            chunk_count=len(chunks),
            usage_bytes=len(text.encode("utf-8")),
        )
        if done is not None:
            log.info(
                "vector_store_file_completed", vector_store_id=vs_id, file_id=file_id, chunks=len(chunks)
            )

    async def stop(self, vs_id: str, file_id: str, attach_id: str) -> None:
        """Cancel the file's ingestion: it is ``cancelled`` and the chunks it wrote are deleted."""
        await self.cancel(vs_id, file_id)
        record = self.state.current(vs_id, file_id, attach_id)
        if record is not None and record["status"] == "in_progress":  # not one that just ended
            await self._end(vs_id, file_id, attach_id, "cancelled", None)

    async def _fail(self, vs_id: str, file_id: str, attach_id: str, message: str) -> None:
        await self._end(vs_id, file_id, attach_id, "failed", {"code": "server_error", "message": message})

    async def _end(
        self, vs_id: str, file_id: str, attach_id: str, status: str, error: dict[str, Any] | None
    ) -> None:
        """Mark the file ``status`` (failed or cancelled), its chunks deleted."""
        record = self.state.current(vs_id, file_id, attach_id)
        if record is None:
            return
        try:
            await self.delete_chunks(vs_id, file_id, record.get("chunk_count", 0))
            count = 0
        except Exception as exc:  # keep the count, so a later delete can try again
            log.warning(
                "vector_store_chunks_not_deleted", vector_store_id=vs_id, file_id=file_id, error=str(exc)
            )
            count = record.get("chunk_count", 0)
        await self._update(
            vs_id, file_id, attach_id, status=status, last_error=error, chunk_count=count, usage_bytes=0
        )


def new_attach_id() -> str:
    return uuid.uuid4().hex


# -- listing helpers (vector stores, their files, file batches) -----------------------------------


def created_order(doc: dict[str, Any]) -> tuple[int, int, str]:
    """Sort key: creation time (ns breaks ties within a second), then id."""
    return doc["created_at"], doc.get("created_ns", 0), doc["id"]


def file_object(record: dict[str, Any]) -> VectorStoreFileObject:
    return VectorStoreFileObject.model_validate(
        {k: record[k] for k in record if k in VectorStoreFileObject.model_fields and k != "object"}
    )


def page_of(
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
