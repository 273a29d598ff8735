"""The inline::reference batches provider: OpenAI's Batches API, each batch a job of the server's job system.

``create_batch`` checks the input file (it exists, purpose ``batch``), stores the batch
(``validating``) and submits a job of kind ``batches.run``. The job:

1. ends the batch ``expired`` if its completion window has passed (a batch that waited for a slot);
2. reads and checks the input file (``lamina_batches.input_file``): any bad line fails the batch with
   OpenAI's ``errors``; otherwise the batch is ``in_progress`` with ``request_counts.total`` set;
3. runs the lines not yet finished through the line executor (``lamina.routers.batch_lines``),
   ``max_concurrent_requests_per_batch`` at a time, each calling the router of its endpoint
   in-process; each finished line is saved in the kvstore at once (``lamina_batches.store``), so a
   resumed job (after a kill, or a shutdown) sends only the others. ``request_counts`` is exact in
   this process's answers and saved at most every ``COUNTS_INTERVAL`` seconds;
4. stops at ``expires_at`` (``expired``) or when every line finished, then writes the output file
   (the successes) and the error file (failed lines; lines not run when it expired) to the Files API
   with purpose ``batch_output``, in input order, and ends ``completed`` (through ``finalizing``).

``cancel_batch`` marks the batch ``cancelling``, cancels its job (the lines in flight stop), writes
the finished lines to the files and ends it ``cancelled``. A batch whose job ended without ending the
batch (its job cancelled or failed through ``/v1/jobs``, or a server stopped mid-cancel) is settled
the next time it is read.

The job kind's ``max_concurrent`` is ``max_concurrent_batches``; the jobs config's ``max_concurrent``
caps all kinds together.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import structlog

from lamina.apis.batches import (
    FINISHED_STATUSES,
    BatchError,
    BatchErrors,
    BatchIdRequest,
    BatchObject,
    BatchRequestCounts,
    CreateBatchRequest,
    ListBatchesRequest,
    ListBatchesResponse,
)
from lamina.apis.binary import UploadFile
from lamina.apis.files import ExpiresAfter, FileIdRequest, StoreFileRequest
from lamina.errors import BadRequestError, ConflictError, NotFoundError, ServiceUnavailableError
from lamina.jobs import JobContext, JobStatus
from lamina.providers import ProviderBase, ProviderContext
from lamina.request_context import PROVIDER_DATA
from lamina.specs import Api
from lamina.storage.config import SqliteKVStoreConfig
from lamina.storage.kvstore import open_kvstore
from lamina_batches.config import ReferenceBatchesImplConfig
from lamina_batches.input_file import LineRequest, parse_input
from lamina_batches.line_calls import batch_usage, not_run_line
from lamina_batches.store import BatchRecord, BatchStore, LineResult

log = structlog.get_logger(__name__)

JOB_KIND = "batches.run"
COUNTS_INTERVAL = 0.5  # seconds between saves of a running batch's request_counts
LINE_WORK = "lamina_batches.line_calls:run_line_work"  # the work function of a line (lamina.jobs.work)


async def create_provider(
    config: ReferenceBatchesImplConfig, deps: dict[Any, Any], context: ProviderContext
) -> ReferenceBatchesProvider:
    return ReferenceBatchesProvider(config, deps, context)


class _NotReadable(Exception):
    """The input file cannot be read (deleted, expired, or its bytes are gone)."""


class ReferenceBatchesProvider(ProviderBase):
    def __init__(
        self, config: ReferenceBatchesImplConfig, deps: dict[Any, Any], context: ProviderContext
    ) -> None:
        super().__init__(context)
        self.config = config
        self.inference = deps[Api.inference]
        self.files = deps[Api.files]
        self.agents = deps.get(Api.agents)
        self.store: BatchStore | None = None
        self._kv: Any = None
        self._live: dict[str, BatchRequestCounts] = {}  # running here: exact counts
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # one per batch
        self.lines_sent = 0  # line requests sent by this process (for tests and benchmarks)

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        kv = self.config.kvstore or SqliteKVStoreConfig(db_path=str(self.context.state_dir / "batches.db"))
        self._kv = await open_kvstore(kv)
        self.store = BatchStore(self._kv)
        if self.context.jobs is not None:
            self.context.jobs.register(
                JOB_KIND, self._run_job, resumable=True, max_concurrent=self.config.max_concurrent_batches
            )

    async def shutdown(self) -> None:
        if self._kv is not None:
            await self._kv.close()

    def _store(self) -> BatchStore:
        if self.store is None:
            raise ServiceUnavailableError(
                "the batches provider is not started (the server is starting or stopping)"
            )
        return self.store

    # -- the API -------------------------------------------------------------------------------

    async def create_batch(self, request: CreateBatchRequest) -> BatchObject:
        jobs = self.context.jobs
        if jobs is None:
            raise ServiceUnavailableError("batches run as jobs, and this server has no job manager")
        try:
            file = await self.files.openai_retrieve_file(FileIdRequest(file_id=request.input_file_id))
        except NotFoundError:
            raise BadRequestError(
                f"input_file_id: there is no file {request.input_file_id!r} (never uploaded, deleted or "
                "expired); upload the JSONL file with POST /v1/files (purpose batch) and use its id",
                param="input_file_id",
            ) from None
        if file.purpose != "batch":
            raise BadRequestError(
                f"input_file_id: file {file.id!r} was uploaded with purpose {file.purpose!r}; a batch reads "
                "files uploaded with purpose 'batch': upload it again with that purpose",
                param="input_file_id",
            )
        now = int(time.time())
        batch = BatchObject(
            id=f"batch_{uuid.uuid4().hex}",
            endpoint=request.endpoint,
            input_file_id=request.input_file_id,
            completion_window=request.completion_window,
            status="validating",
            created_at=now,
            expires_at=now + self.config.completion_window_seconds,
            metadata=request.metadata,
        )
        store = self._store()
        record = BatchRecord(batch, provider_data=PROVIDER_DATA.get())
        await store.put(record)  # before the job: its handler reads it
        expires = request.output_expires_after.model_dump() if request.output_expires_after else None
        job = await jobs.submit(JOB_KIND, {"batch_id": batch.id, "output_expires_after": expires})
        async with self._locks[batch.id]:
            current = await store.get(batch.id)
            record = current or record
            record.job_id = job.id
            await store.put(record)
        log.info("batch_created", batch_id=batch.id, job_id=job.id, endpoint=batch.endpoint)
        return batch  # as created (validating), whatever its job did since

    async def retrieve_batch(self, request: BatchIdRequest) -> BatchObject:
        record = await self._settled(await self._get(request.batch_id))
        return self._shown(record.batch)

    async def list_batches(self, request: ListBatchesRequest) -> ListBatchesResponse:
        records = sorted(await self._store().all(), key=lambda r: (r.created, r.batch.id), reverse=True)
        start = 0
        if request.after is not None:
            ids = [r.batch.id for r in records]
            if request.after not in ids:
                raise BadRequestError(
                    f"after: there is no batch {request.after!r}; pass the last_id of the previous page",
                    param="after",
                )
            start = ids.index(request.after) + 1
        page = [self._shown(r.batch) for r in records[start : start + request.limit]]
        return ListBatchesResponse(
            data=page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=start + request.limit < len(records),
        )

    async def cancel_batch(self, request: BatchIdRequest) -> BatchObject:
        store = self._store()
        async with self._locks[request.batch_id]:
            record = await self._get(request.batch_id)
            status = record.batch.status
            if status in FINISHED_STATUSES or status == "finalizing":
                raise ConflictError(
                    f"batch {request.batch_id} is {status} already; only a validating or in_progress batch "
                    "can be cancelled",
                    param="batch_id",
                )
            if status != "cancelling":
                record.batch.status = "cancelling"
                record.batch.cancelling_at = int(time.time())
                await store.put(record)
        await self._stop_job(record.job_id)
        record = await self._finish(request.batch_id, "cancelled")
        return self._shown(record.batch)

    # -- reading and settling ------------------------------------------------------------------

    async def _get(self, batch_id: str) -> BatchRecord:
        record = await self._store().get(batch_id)
        if record is None:
            raise NotFoundError(
                f"batch_id: there is no batch {batch_id!r}; GET /v1/batches lists them", param="batch_id"
            )
        return record

    def _shown(self, batch: BatchObject) -> BatchObject:
        live = self._live.get(batch.id)
        if live is not None and batch.status == "in_progress":
            return batch.model_copy(update={"request_counts": live.model_copy()})
        return batch

    async def _stop_job(self, job_id: str | None) -> None:
        jobs = self.context.jobs
        if jobs is None or job_id is None:
            return
        try:
            await jobs.cancel(job_id)  # waits for the handler here to stop
        except (ConflictError, NotFoundError):
            pass  # it ended already: nothing runs

    async def _settled(self, record: BatchRecord) -> BatchRecord:
        """The batch, ended if its job ended without ending it (cancelled or failed through /v1/jobs, a
        server stopped mid-cancel)."""
        jobs = self.context.jobs
        if record.batch.status in FINISHED_STATUSES or record.job_id is None or jobs is None:
            return record
        try:
            job = await jobs.get(record.job_id)
        except NotFoundError:
            return record
        if not job.status.finished:
            return record
        if record.batch.status == "cancelling" or job.status == JobStatus.cancelled:
            return await self._finish(record.batch.id, "cancelled")
        error = BatchError(
            code="internal_error", message=f"the batch's job {job.id} ended: {job.error or job.status}"
        )
        return await self._fail(record.batch.id, [error])

    # -- the job -------------------------------------------------------------------------------

    async def _run_job(self, ctx: JobContext) -> dict[str, Any]:
        batch_id = ctx.params["batch_id"]
        try:
            record = await self._store().get(batch_id)
            # The lines' provider calls see the create request's provider data, as that request's own
            # calls would (this task's context only: the job runs in a task of its own).
            PROVIDER_DATA.set(record.provider_data if record is not None else None)
            return await self._run(ctx, batch_id)
        except Exception as exc:  # a bug or a storage failure: the batch says so, and the job fails
            message = f"{type(exc).__name__}: {exc}"
            try:
                await self._fail(batch_id, [BatchError(code="internal_error", message=message)])
            except Exception:
                log.exception("batch_not_failed", batch_id=batch_id)
            raise
        finally:
            self._live.pop(batch_id, None)

    async def _run(self, ctx: JobContext, batch_id: str) -> dict[str, Any]:
        store = self._store()
        record = await store.get(batch_id)
        if record is None:
            return {"batch_status": "missing"}
        batch = record.batch
        if batch.status in FINISHED_STATUSES:
            return {"batch_status": batch.status}
        if batch.status in ("cancelling", "finalizing"):  # a stop in the middle of either: finish it
            final = "cancelled" if batch.status == "cancelling" else "completed"
            return {"batch_status": (await self._finish(batch_id, final, ctx=ctx)).batch.status}
        if batch.expires_at is not None and time.time() >= batch.expires_at:
            return {"batch_status": (await self._finish(batch_id, "expired", ctx=ctx)).batch.status}
        try:
            requests, errors = await self._parse(batch)
        except _NotReadable as exc:
            requests, errors = [], [BatchError(code="invalid_file", message=str(exc), param="input_file_id")]
        if errors:
            return {"batch_status": (await self._fail(batch_id, errors)).batch.status}
        if batch.status == "validating":
            models = {r.body["model"] for r in requests}
            record = await self._update(
                batch_id,
                status="in_progress",
                in_progress_at=int(time.time()),
                request_counts=BatchRequestCounts(total=len(requests)),
                model=models.pop() if len(models) == 1 else None,
            )
            if record.batch.status != "in_progress":  # cancelled meanwhile
                return {"batch_status": record.batch.status}
        done = await store.lines(batch_id)
        counts = BatchRequestCounts(
            total=len(requests),
            completed=sum(1 for line in done if line.ok),
            failed=sum(1 for line in done if not line.ok),
        )
        self._live[batch_id] = counts
        finished = {line.index for line in done}
        pending = [r for r in requests if r.index not in finished]
        log.info(
            "batch_running", batch_id=batch_id, lines=len(requests), pending=len(pending), attempt=ctx.attempt
        )
        await ctx.progress(len(finished), len(requests), flush=True)
        saved_at = time.monotonic()

        async def stored(_: int, answer: dict[str, Any]) -> None:
            nonlocal saved_at
            result = LineResult(answer["index"], answer["ok"], answer["out"])
            await store.put_line(batch_id, result, batch.expires_at)
            if result.ok:
                counts.completed += 1
            else:
                counts.failed += 1
            if time.monotonic() - saved_at >= COUNTS_INTERVAL:
                saved_at = time.monotonic()
                await self._save_counts(batch_id, counts)
            await ctx.progress(counts.completed + counts.failed, counts.total)

        items = [
            {
                "endpoint": batch.endpoint,
                "index": r.index,
                "line": r.line,
                "custom_id": r.custom_id,
                "body": r.body,
            }
            for r in pending
        ]
        self.lines_sent += len(items)  # handed to the executor (a test counts what a resume re-sends)
        remaining = batch.expires_at - time.time() if batch.expires_at is not None else None
        try:
            async with asyncio.timeout(remaining):
                await ctx.map(
                    LINE_WORK,
                    items,
                    concurrency=self.config.max_concurrent_requests_per_batch,
                    on_result=stored,
                    yield_to_clients=True,  # no client waits on a batch's lines: clients first
                )
        except TimeoutError:
            return {"batch_status": (await self._finish(batch_id, "expired", requests, ctx=ctx)).batch.status}
        return {"batch_status": (await self._finish(batch_id, "completed", requests, ctx=ctx)).batch.status}

    async def _parse(self, batch: BatchObject) -> tuple[list[LineRequest], list[BatchError]]:
        data = await self._input_bytes(batch)
        # Off the event loop: 50,000 lines take about half a second of CPU (measured), and a loop blocked
        # that long delays every request and the jobs' lease heartbeats.
        return await asyncio.to_thread(parse_input, data, batch.endpoint, max_lines=self.config.max_lines)

    async def _input_bytes(self, batch: BatchObject) -> bytes:
        try:
            content = await self.files.openai_retrieve_file_content(
                FileIdRequest(file_id=batch.input_file_id)
            )
        except NotFoundError:
            raise _NotReadable(
                f"the input file {batch.input_file_id!r} is gone (deleted or expired); upload it again and "
                "create a new batch"
            ) from None
        if content.body is not None:
            return content.body
        if content.path is not None:
            try:
                return await asyncio.to_thread(content.path.read_bytes)
            except OSError as exc:
                raise _NotReadable(f"the input file {batch.input_file_id!r} cannot be read: {exc}") from None
        chunks = [chunk async for chunk in content.chunks] if content.chunks is not None else []
        return b"".join(chunks)

    # -- state changes -------------------------------------------------------------------------

    async def _update(self, batch_id: str, **fields: Any) -> BatchRecord:
        """Set ``fields`` on a batch that is still in the status it had (a cancel wins over the job)."""
        async with self._locks[batch_id]:
            record = await self._get(batch_id)
            if record.batch.status in FINISHED_STATUSES or record.batch.status == "cancelling":
                return record
            record.batch = record.batch.model_copy(update=fields)
            await self._store().put(record)
            return record

    async def _save_counts(self, batch_id: str, counts: BatchRequestCounts) -> None:
        async with self._locks[batch_id]:
            record = await self._get(batch_id)
            if record.batch.status == "in_progress":
                record.batch.request_counts = counts.model_copy()
                await self._store().put(record)

    async def _fail(self, batch_id: str, errors: list[BatchError]) -> BatchRecord:
        async with self._locks[batch_id]:
            record = await self._get(batch_id)
            if record.batch.status in FINISHED_STATUSES:
                return record
            record.batch.status = "failed"
            record.batch.failed_at = int(time.time())
            record.batch.errors = BatchErrors(data=errors)
            record.provider_data = None
            await self._store().put(record)
        log.info(
            "batch_failed", batch_id=batch_id, errors=len(errors), first=errors[0].message if errors else None
        )
        return record

    async def _finish(
        self,
        batch_id: str,
        final: str,
        requests: list[LineRequest] | None = None,
        *,
        ctx: JobContext | None = None,
    ) -> BatchRecord:
        """End the batch ``final`` (completed, expired or cancelled): write its output and error files.

        One at a time per batch; a batch that ended meanwhile is left as it is, and a batch being
        cancelled ends only as cancelled.
        """
        store = self._store()
        async with self._locks[batch_id]:
            record = await self._get(batch_id)
            status = record.batch.status
            if status in FINISHED_STATUSES or (status == "cancelling" and final != "cancelled"):
                return record
            if final == "completed" and status != "finalizing":
                record.batch.status = "finalizing"
                record.batch.finalizing_at = int(time.time())
                await store.put(record)
            lines = await store.lines(batch_id)
            if final != "completed" and requests is None and record.batch.request_counts.total:
                requests = await self._requests_if_readable(record.batch)
            output = [line.out for line in lines if line.ok]
            errors = [line.out for line in lines if not line.ok]
            if final != "completed" and requests:
                finished = {line.index for line in lines}
                errors = _in_order(lines, requests, finished, final)
            expires = (
                ctx.params.get("output_expires_after") if ctx is not None else None
            ) or await self._expiry_of(record)
            batch = record.batch
            if output:
                batch.output_file_id = await self._write_file(batch.id, "output", output, expires)
            if errors:
                batch.error_file_id = await self._write_file(batch.id, "error", errors, expires)
            batch.usage = batch_usage(output)
            batch.request_counts = BatchRequestCounts(
                total=batch.request_counts.total or len(lines),
                completed=len(output),
                failed=sum(1 for line in lines if not line.ok),
            )
            batch.status = final  # type: ignore[assignment]
            setattr(batch, f"{final}_at", int(time.time()))
            record.provider_data = None
            await store.put(record)
        log.info(
            "batch_ended",
            batch_id=batch_id,
            status=final,
            completed=batch.request_counts.completed,
            failed=batch.request_counts.failed,
        )
        return record

    async def _requests_if_readable(self, batch: BatchObject) -> list[LineRequest] | None:
        try:
            requests, errors = await self._parse(batch)
        except _NotReadable:
            return None
        return None if errors else requests

    async def _expiry_of(self, record: BatchRecord) -> dict[str, Any] | None:
        jobs = self.context.jobs
        if jobs is None or record.job_id is None:
            return None
        try:
            return (await jobs.get(record.job_id)).params.get("output_expires_after")
        except NotFoundError:
            return None

    async def _write_file(
        self, batch_id: str, kind: str, lines: list[dict[str, Any]], expires: dict | None
    ) -> str:
        data = await asyncio.to_thread(_jsonl, lines)  # off the event loop, as the input's parsing
        upload = UploadFile.from_bytes(
            data, filename=f"{batch_id}_{kind}.jsonl", content_type="application/jsonl"
        )
        after = ExpiresAfter.model_validate(expires) if expires else None
        stored = await self.files.openai_upload_file(
            StoreFileRequest(purpose="batch_output", expires_after=after, file=upload)
        )
        return stored.id


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)


def _in_order(
    lines: list[LineResult], requests: list[LineRequest], finished: set[int], why: str
) -> list[dict[str, Any]]:
    """The error file of a batch that stopped early: failed lines and lines not run, in input order."""
    failed = {line.index: line.out for line in lines if not line.ok}
    out = []
    for request in requests:
        if request.index in failed:
            out.append(failed[request.index])
        elif request.index not in finished:
            out.append(not_run_line(request, why))
    return out
