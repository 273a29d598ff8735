"""inline::localfs: files on local disk under ``storage_dir``, metadata in a SQL table.

An upload streams: each chunk read from the socket is buffered up to ``WRITE_SIZE`` and written by a
worker thread (``asyncio.to_thread``), so the event loop never waits on the disk and the server holds
at most one buffer per upload, whatever the file's size. The bytes go to ``<storage_dir>/.partial/<id>``;
only once complete (and fsynced) is the file renamed to ``<storage_dir>/<id>`` and its metadata row
inserted. So a file is listed only when whole, and what a killed process leaves behind is either a
partial file or a renamed file with no row: start-up removes both (``_cleanup``), as it removes
expired files (and an hourly task does too).

Quotas (``max_files``, ``max_total_bytes``) count what the metadata table holds, so replicas sharing
it share one quota, plus this process's uploads in flight. An upload is checked before its first
byte, as its bytes arrive, and once more (under a lock, with fresh counts) just before its row is
inserted; over the quota it is refused with 409 and its bytes removed. Stored files are never
removed to make room. Replicas can overshoot by the uploads they finish at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from lamina.apis.binary import BinaryResponse
from lamina.apis.files import (
    FileIdRequest,
    ListFilesRequest,
    ListOpenAIFileResponse,
    OpenAIFileDeleteResponse,
    OpenAIFileObject,
    UploadFileRequest,
)
from lamina.errors import NotFoundError, PayloadTooLargeError, QuotaExceededError
from lamina.providers.base import ProviderBase, ProviderContext
from lamina.storage.files_store import (
    DEFAULT_DB_NAME,
    FileRecord,
    FilesStore,
    files_store_config,
    open_files_store,
)
from lamina_localfs.config import LocalfsFilesImplConfig

log = structlog.get_logger(__name__)

WRITE_SIZE = 1024 * 1024  # bytes handed to the writer thread at a time
PURGE_INTERVAL = 3600.0
_FILE_ID = re.compile(r"^file-[0-9a-f]{32}$")
_GENERIC_TYPES = {"", "application/octet-stream"}


async def create_provider(
    config: LocalfsFilesImplConfig, deps: dict, context: ProviderContext
) -> LocalfsFilesImpl:
    return LocalfsFilesImpl(config, context)


class LocalfsFilesImpl(ProviderBase):
    def __init__(self, config: LocalfsFilesImplConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.storage_dir = Path(config.storage_dir or context.state_dir / "files").expanduser().resolve()
        self.partial_dir = self.storage_dir / ".partial"
        self.store_config = files_store_config(config.metadata_store, context.state_dir / DEFAULT_DB_NAME)
        self._store: FilesStore | None = None
        self._purger: asyncio.Task[None] | None = None
        self._in_flight: dict[str, int] = {}  # file id -> bytes received, for uploads not stored yet
        self._insert_lock = asyncio.Lock()

    @property
    def store(self) -> FilesStore:
        if self._store is None:
            raise RuntimeError(f"files provider {self.provider_id!r} is not initialized")
        return self._store

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        await asyncio.to_thread(self.partial_dir.mkdir, parents=True, exist_ok=True)
        self._store = await open_files_store(self.store_config)
        await self._cleanup()
        self._purger = asyncio.create_task(self._purge_loop(), name=f"localfs-purge-{self.provider_id}")
        log.info("localfs_ready", storage_dir=str(self.storage_dir), metadata=self.store.where)

    async def shutdown(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}

    async def _cleanup(self) -> None:
        """Remove partial uploads and files with no metadata row (a crash mid-upload), then expired files."""
        known = await self.store.ids()

        def sweep() -> tuple[int, int]:
            partial = orphans = 0
            for entry in self.partial_dir.iterdir():
                _remove(entry)
                partial += 1
            for entry in self.storage_dir.iterdir():
                if _FILE_ID.match(entry.name) and entry.name not in known:
                    _remove(entry)
                    orphans += 1
            return partial, orphans

        partial, orphans = await asyncio.to_thread(sweep)
        if partial or orphans:
            log.info("localfs_cleanup", partial_uploads_removed=partial, orphan_files_removed=orphans)
        await self._purge_expired()

    async def _purge_expired(self) -> None:
        while expired := await self.store.expired(int(time.time())):
            for record in expired:
                await self.store.delete(record.id)
                await asyncio.to_thread(_remove, self._path(record.id))
            log.info("localfs_expired_files_removed", count=len(expired))

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(PURGE_INTERVAL)
            try:
                await self._purge_expired()
            except Exception as exc:  # the database is down: try again next time
                log.warning("localfs_purge_failed", error=str(exc))

    def _path(self, file_id: str) -> Path:
        return self.storage_dir / file_id

    # -- the Files API -------------------------------------------------------------------------

    async def openai_upload_file(self, request: UploadFileRequest) -> OpenAIFileObject:
        upload = request.file
        filename = upload.filename or "upload"
        file_id = f"file-{uuid.uuid4().hex}"
        partial, final = self.partial_dir / file_id, self._path(file_id)
        limit = self.config.max_file_size
        size = 0
        self._in_flight[file_id] = 0
        handle: BinaryIO | None = None
        try:
            budget = await self._check_quota(file_id, filename, 0)
            handle = await asyncio.to_thread(open, partial, "xb")
            buf = bytearray()
            async for chunk in upload:
                size += len(chunk)
                self._in_flight[file_id] = size
                if size > budget:  # maybe others finished or were deleted meanwhile: count afresh
                    budget = await self._check_quota(file_id, filename, size, streaming=True)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"file: {filename!r} is larger than the limit of {limit} bytes ({_human(limit)}), "
                        f"the max_file_size of files provider {self.provider_id!r}; nothing was stored",
                        param="file",
                    )
                buf += chunk
                if len(buf) >= WRITE_SIZE:
                    data, buf = buf, bytearray()
                    await asyncio.to_thread(handle.write, data)
            await asyncio.to_thread(_finish, handle, bytes(buf), partial, final)
            handle = None
        except BaseException:
            self._in_flight.pop(file_id, None)
            await asyncio.shield(asyncio.to_thread(_discard, handle, partial))
            raise
        created_at = int(time.time())
        if request.expires_after is not None:
            expires_at: int | None = created_at + request.expires_after.seconds
        else:
            expires_at = created_at + self.config.ttl_secs if self.config.ttl_secs else None
        record = FileRecord(
            id=file_id,
            filename=filename,
            purpose=request.purpose,
            bytes=size,
            created_at=created_at,
            expires_at=expires_at,
            content_type=_content_type(filename, upload.content_type),
            file_path=str(final),
        )
        try:
            # One check-then-insert at a time, so concurrent uploads see each other.
            async with self._insert_lock:
                await self._check_quota(file_id, filename, size)
                await self.store.insert(record)
                self._in_flight.pop(file_id, None)
        except BaseException:
            self._in_flight.pop(file_id, None)
            await asyncio.shield(asyncio.to_thread(_remove, final))
            raise
        log.info("file_stored", file_id=file_id, bytes=size, purpose=request.purpose)
        return _object(record)

    async def _check_quota(self, file_id: str, filename: str, size: int, *, streaming: bool = False) -> float:
        """Refuse (409) an upload of ``size`` bytes that would go over a quota; else the bytes it may grow to.

        Counts the stored files (every replica's) and this process's other uploads in flight.
        """
        max_files, max_bytes = self.config.max_files, self.config.max_total_bytes
        if max_files is None and max_bytes is None:
            return float("inf")
        files, used = await self.store.usage(int(time.time()))
        others = [n for fid, n in self._in_flight.items() if fid != file_id]
        files, used = files + len(others), used + sum(others)
        fix = "delete files no longer needed (DELETE /v1/files/{file_id})"
        if max_files is not None and files >= max_files:
            raise QuotaExceededError(
                f"file: files provider {self.provider_id!r} already holds {files} files (counting uploads "
                f"in progress), its max_files quota; {fix} or raise max_files in its config; "
                f"{filename!r} was not stored",
                param="file",
            )
        if max_bytes is not None and used + size > max_bytes:
            what = f"{_human(size)} received so far" if streaming else _human(size)
            raise QuotaExceededError(
                f"file: storing {filename!r} ({what}) would take files provider {self.provider_id!r} over "
                f"its max_total_bytes quota of {_human(max_bytes)} ({_human(used)} already stored or "
                f"uploading); {fix} or raise max_total_bytes in its config; nothing was stored",
                param="file",
            )
        return float("inf") if max_bytes is None else max_bytes - used

    async def openai_list_files(self, request: ListFilesRequest) -> ListOpenAIFileResponse:
        page = await self.store.list(
            now=int(time.time()),
            after=request.after,
            limit=request.limit,
            order=request.order,
            purpose=request.purpose,
        )
        data = [_object(r) for r in page.rows]
        return ListOpenAIFileResponse(
            data=data,
            has_more=page.has_more,
            first_id=data[0].id if data else "",
            last_id=data[-1].id if data else "",
        )

    async def _record(self, file_id: str) -> FileRecord:
        record = await self.store.get(file_id, int(time.time())) if _FILE_ID.match(file_id) else None
        if record is None:
            raise NotFoundError(
                f"file_id: no file {file_id!r} (never uploaded, deleted or expired); "
                f"GET /v1/openai/v1/files lists the stored files",
                param="file_id",
            )
        return record

    async def openai_retrieve_file(self, request: FileIdRequest) -> OpenAIFileObject:
        return _object(await self._record(request.file_id))

    async def openai_delete_file(self, request: FileIdRequest) -> OpenAIFileDeleteResponse:
        record = await self._record(request.file_id)
        # Row first: a crash between the two leaves an orphan file, which start-up removes.
        await self.store.delete(record.id)
        await asyncio.to_thread(_remove, self._path(record.id))
        return OpenAIFileDeleteResponse(id=record.id, deleted=True)

    async def openai_retrieve_file_content(self, request: FileIdRequest) -> BinaryResponse:
        record = await self._record(request.file_id)
        path = self._path(record.id)
        if not await asyncio.to_thread(path.is_file):
            raise NotFoundError(
                f"file_id: the bytes of {record.id!r} are missing from {self.storage_dir}", param="file_id"
            )
        return BinaryResponse(
            path=path, content_type=record.content_type, filename=record.filename, size=record.bytes
        )


def _object(record: FileRecord) -> OpenAIFileObject:
    return OpenAIFileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=record.created_at,
        expires_at=record.expires_at,
        filename=record.filename,
        purpose=record.purpose,  # type: ignore[arg-type]
    )


def _content_type(filename: str, declared: str | None) -> str:
    """The part's Content-Type when specific, else guessed from the file name, else octet-stream."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared not in _GENERIC_TYPES:
        return declared
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _finish(handle: BinaryIO, tail: bytes, partial: Path, final: Path) -> None:
    """(thread) Write the last bytes, make them durable, then publish the file under its id."""
    with handle:
        if tail:
            handle.write(tail)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)


def _discard(handle: BinaryIO | None, partial: Path) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()
    _remove(partial)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:g} {unit}" if unit == "bytes" else f"{size:.4g} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)
