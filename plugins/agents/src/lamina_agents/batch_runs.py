"""Batch agent runs: an agent over the rows of a dataset or a JSONL file, each run a job (``agents.batch``).

``create`` checks everything a client can get wrong before anything runs (the agent, the source, every
row: ``lamina_agents.batch_rows.turn_messages``), registers the results dataset (empty rows, through
DatasetIO: the default provider for rows keeps them) and submits the job. The job's handler:

1. reads the results dataset: the rows already there are finished (a resumed run, after a kill or a
   shutdown, runs only the others; at least once: a row whose turn ended but whose results row was not
   appended yet when the server died runs again, in a new session);
2. reads the source's first ``total`` rows (the count checked at creation) and hands the unfinished ones
   to ``context.map(ROW_WORK, ...)``: the job's executor runs ``run_row`` for each, at most
   ``max_concurrency`` at once, here or in a worker;
3. appends each results row as it arrives (``on_result``, in this server) and reports progress with the
   row counts in the checkpoint.

Cancelling stops the rows in flight (their turns end failed); the rows appended stay. The counts of a run
are exact while it runs here, and in its result once completed; a run that was cancelled or failed
counts its results dataset's rows when read.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import structlog

from lamina.apis.agents import (
    BatchAgentJob,
    BatchAgentJobRequest,
    BatchAgentRowCounts,
    CreateBatchAgentJobRequest,
    ListBatchAgentJobsRequest,
    ListBatchAgentJobsResponse,
)
from lamina.apis.datasets import AppendRowsRequest, GetDatasetRequest, RegisterDatasetRequest, RowsDataSource
from lamina.apis.files import FileIdRequest
from lamina.apis.jobs import Job
from lamina.errors import BadRequestError, ConflictError, NotFoundError, ServiceUnavailableError
from lamina.jobs import JobContext
from lamina.request_context import PROVIDER_DATA
from lamina_agents.batch_rows import ROW_WORK, RowError, turn_messages

log = structlog.get_logger(__name__)

JOB_KIND = "agents.batch"
PAGE_ROWS = 1000
MAX_ROWS = 100_000  # rows in one run: they are checked, and their messages held, in memory
_PROVIDER_DATA = "batch_agents:provider_data:"  # agents store key prefix of a run's provider data


class BatchRuns:
    """The BatchAgents API of the agents provider. ``agents`` is the provider itself (its agents,
    sessions and turns), ``datasetio`` and ``files`` the routers of those APIs (None when not served)."""

    def __init__(self, agents: Any, jobs: Any, datasetio: Any, files: Any) -> None:
        self.agents = agents
        self.jobs = jobs
        self.datasetio = datasetio
        self.files = files
        self._live: dict[str, BatchAgentRowCounts] = {}  # runs going on here: exact counts
        self._counted: dict[str, BatchAgentRowCounts] = {}  # ended runs counted from their results
        self.rows_started = 0  # rows handed to the executor by this process (tests count re-runs)

    def register(self) -> None:
        if self.jobs is not None:
            self.jobs.register(JOB_KIND, self._run, resumable=True)

    # -- the API ---------------------------------------------------------------------------------

    async def create(self, request: CreateBatchAgentJobRequest) -> BatchAgentJob:
        if self.jobs is None:
            raise ServiceUnavailableError("batch agent runs are jobs, and this server has no job manager")
        if self.datasetio is None:
            raise BadRequestError(
                "results_dataset_id: a batch agent run writes its results to a dataset through DatasetIO, "
                "and this server serves none; add a datasetio provider (e.g. inline::localfs)",
                param="results_dataset_id",
            )
        agent_id = await self._agent_of(request)
        source, rows = await self._rows_of(request)
        if not rows:
            field, value = source
            raise BadRequestError(
                f"{field}: {value!r} has no rows; a batch agent run needs at least one", param=field
            )
        for index, row in enumerate(rows):
            try:
                turn_messages(row, index, request.input_column, request.messages_column)
            except RowError as exc:
                raise BadRequestError(
                    f"input_column: {exc}; name the column holding each row's input with input_column "
                    f"(or its messages with messages_column), or fix the row",
                    param="input_column",
                ) from None
        if request.agent_config is not None:
            agent_id = (await self.agents.create_agent_from_config(request.agent_config)).agent_id
        results = request.results_dataset_id or f"batch-agents-{uuid.uuid4().hex}-results"
        await self._register_results(results, agent_id, source)
        params = {
            "agent_id": agent_id,
            source[0]: source[1],
            "input_column": request.input_column,
            "messages_column": request.messages_column,
            "results_dataset_id": results,
            "max_concurrency": request.max_concurrency,
            "total": len(rows),
            "metadata": request.metadata,
        }
        provider_data = PROVIDER_DATA.get()
        if provider_data is not None:
            # The rows' provider calls see the create request's provider data (a caller's own upstream
            # key), as its own calls would; kept in the agents store, not in the job's params, which
            # /v1/jobs shows to anyone, and only until the run ends.
            params["provider_data_key"] = f"{_PROVIDER_DATA}{uuid.uuid4().hex}"
            await self.agents.db.kv.set(params["provider_data_key"], json.dumps(provider_data))
        job = await self.jobs.submit(JOB_KIND, params, total=len(rows))
        log.info("batch_agent_run_created", job_id=job.id, agent_id=agent_id, rows=len(rows), results=results)
        return await self._shown(job)

    async def list(self, request: ListBatchAgentJobsRequest) -> ListBatchAgentJobsResponse:
        if self.jobs is None:
            return ListBatchAgentJobsResponse(data=[])
        if request.after is not None:
            await self._job(request.after, "after")
        jobs, more = await self.jobs.list(kind=JOB_KIND, after=request.after, limit=request.limit)
        data = [await self._shown(job) for job in jobs]
        return ListBatchAgentJobsResponse(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=more,
        )

    async def get(self, request: BatchAgentJobRequest) -> BatchAgentJob:
        return await self._shown(await self._job(request.job_id, "job_id"))

    async def cancel(self, request: BatchAgentJobRequest) -> BatchAgentJob:
        job = await self._job(request.job_id, "job_id")
        if job.status.finished:
            raise ConflictError(
                f"batch agent run {job.id} is {job.status.value} already; only a scheduled or in_progress "
                "run can be cancelled",
                param="job_id",
            )
        try:
            job = await self.jobs.cancel(job.id)  # waits for the handler here to stop
        except ConflictError:
            job = await self.jobs.get(job.id)  # it ended meanwhile
        await self._forget_provider_data(job)
        return await self._shown(job)

    async def _forget_provider_data(self, job: Job) -> None:
        key = job.params.get("provider_data_key")
        if key is not None:
            await self.agents.db.kv.delete(key)

    # -- checks ----------------------------------------------------------------------------------

    async def _agent_of(self, request: CreateBatchAgentJobRequest) -> str | None:
        if (request.agent_id is None) == (request.agent_config is None):
            raise BadRequestError(
                "agent_id: give either agent_id (a registered agent) or agent_config (an agent for this "
                "run), not both and not neither",
                param="agent_id",
            )
        if request.agent_id is not None:
            await self.agents.check_agent(request.agent_id)
            return request.agent_id
        assert request.agent_config is not None
        await self.agents.check_config(request.agent_config)
        return None

    async def _rows_of(self, request: CreateBatchAgentJobRequest) -> tuple[tuple[str, str], list[Any]]:
        if (request.dataset_id is None) == (request.input_file_id is None):
            raise BadRequestError(
                "dataset_id: give either dataset_id (a registered dataset) or input_file_id (a JSONL file of "
                "the Files API), not both and not neither",
                param="dataset_id",
            )
        if request.dataset_id is not None:
            source = ("dataset_id", request.dataset_id)
            await self.datasetio.datasets.get_dataset(GetDatasetRequest(dataset_id=request.dataset_id))
        else:
            source = ("input_file_id", request.input_file_id or "")
        rows = await self._read(dict([source]), MAX_ROWS + 1)
        if len(rows) > MAX_ROWS:
            raise BadRequestError(
                f"{source[0]}: {source[1]!r} has more than {MAX_ROWS:,} rows, more than one run "
                "takes; split it",
                param=source[0],
            )
        return source, rows

    async def _read(self, params: dict[str, Any], limit: int) -> list[Any]:
        """The source's first ``limit`` rows (a dataset's, or a JSONL file's lines)."""
        if params.get("dataset_id") is not None:
            rows: list[Any] = []
            async for page in self.datasetio.pages(params["dataset_id"], page_rows=PAGE_ROWS, limit=limit):
                rows += page
            return rows[:limit]
        file_id = params["input_file_id"]
        data = await self._file_bytes(file_id)
        return await asyncio.to_thread(_jsonl_rows, data, limit)

    async def _file_bytes(self, file_id: str) -> bytes:
        if self.files is None:
            raise BadRequestError(
                "input_file_id: this server serves no Files API; add a files provider (e.g. inline::localfs) "
                "or give a dataset_id",
                param="input_file_id",
            )
        try:
            content = await self.files.openai_retrieve_file_content(FileIdRequest(file_id=file_id))
        except NotFoundError:
            raise BadRequestError(
                f"input_file_id: there is no file {file_id!r} (never uploaded, deleted or expired); upload "
                "the JSONL file with POST /v1/files and use its id",
                param="input_file_id",
            ) from None
        if content.body is not None:
            return content.body
        if content.path is not None:
            return await asyncio.to_thread(content.path.read_bytes)
        return b"".join([chunk async for chunk in content.chunks]) if content.chunks is not None else b""

    async def _register_results(self, dataset_id: str, agent_id: str, source: tuple[str, str]) -> None:
        try:
            await self.datasetio.datasets.get_dataset(GetDatasetRequest(dataset_id=dataset_id))
        except NotFoundError:
            pass
        else:  # its rows would read as finished rows of this run
            raise ConflictError(
                f"results_dataset_id: dataset {dataset_id!r} exists already; a run's results go to a new "
                "dataset: pick another id, or leave it out for a new one",
                param="results_dataset_id",
            )
        request = RegisterDatasetRequest(
            dataset_id=dataset_id,
            purpose="eval/messages-answer",
            source=RowsDataSource(rows=[]),
            metadata={"batch_agents": True, "agent_id": agent_id, source[0]: source[1]},
        )
        try:
            await self.datasetio.datasets.register_dataset(request)
        except ConflictError as exc:
            raise ConflictError(
                f"results_dataset_id: {exc.message}; pick another id, or leave it out for a new one",
                param="results_dataset_id",
            ) from None

    async def _job(self, job_id: str, field: str) -> Job:
        if self.jobs is not None:
            try:
                job = await self.jobs.get(job_id)
            except NotFoundError:
                job = None
            if job is not None and job.kind == JOB_KIND:
                return job
        raise NotFoundError(
            f"{field}: there is no batch agent run {job_id!r}; GET /v1/batch-agents/jobs lists them",
            param=field,
        )

    # -- the answer ------------------------------------------------------------------------------

    async def _shown(self, job: Job) -> BatchAgentJob:
        params = job.params
        return BatchAgentJob(
            id=job.id,
            status=job.status,
            agent_id=params["agent_id"],
            dataset_id=params.get("dataset_id"),
            input_file_id=params.get("input_file_id"),
            input_column=params["input_column"],
            messages_column=params["messages_column"],
            results_dataset_id=params["results_dataset_id"],
            row_counts=await self._counts(job),
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            error=job.error,
            metadata=params.get("metadata"),
        )

    async def _counts(self, job: Job) -> BatchAgentRowCounts:
        total = job.params["total"]
        live = self._live.get(job.id)
        if live is not None:
            return live.model_copy()
        if isinstance(job.result, dict) and "completed" in job.result:
            return BatchAgentRowCounts(
                total=total, completed=job.result["completed"], failed=job.result["failed"]
            )
        if job.status.finished:  # cancelled or failed: what its results dataset holds
            counted = self._counted.get(job.id)
            if counted is None:
                counted = _count(total, await self._results(job.params["results_dataset_id"]))
                self._counted[job.id] = counted
            return counted.model_copy()
        saved = job.checkpoint if isinstance(job.checkpoint, dict) else {}
        return BatchAgentRowCounts(
            total=total, completed=saved.get("completed", 0), failed=saved.get("failed", 0)
        )

    async def _results(self, dataset_id: str) -> list[dict[str, Any]]:
        try:
            rows: list[dict[str, Any]] = []
            async for page in self.datasetio.pages(dataset_id, page_rows=PAGE_ROWS):
                rows += page
            return rows
        except NotFoundError:  # unregistered since: nothing to count
            return []

    # -- the job ---------------------------------------------------------------------------------

    async def _run(self, ctx: JobContext) -> dict[str, Any]:
        key = ctx.params.get("provider_data_key")
        if key is not None:  # this task's context only: the job runs in a task of its own
            saved = await self.agents.db.kv.get(key)
            PROVIDER_DATA.set(json.loads(saved) if saved is not None else None)
        try:
            result = await self._rows(ctx)
        except Exception:  # the run failed: it will not run again
            await self._forget_provider_data(ctx.job)
            raise
        await self._forget_provider_data(ctx.job)  # a cancelled run's is forgotten by cancel()
        return result

    async def _rows(self, ctx: JobContext) -> dict[str, Any]:
        params = ctx.params
        results, total = params["results_dataset_id"], params["total"]
        finished = await self._results(results)
        counts = _count(total, finished)
        self._live[ctx.job_id] = counts
        try:
            done = {row.get("row_index") for row in finished}
            rows = await self._read(params, total)
            items, bad = [], []
            for i, row in enumerate(rows):
                if i in done:
                    continue
                try:
                    messages = turn_messages(row, i, params["input_column"], params["messages_column"])
                except RowError as exc:  # the source changed since the run was checked: this row fails
                    bad.append(_bad_row(i, row, str(exc)))
                    continue
                items.append(
                    {
                        "index": i,
                        "agent_id": params["agent_id"],
                        "session_name": f"{ctx.job_id}-row-{i}",
                        "messages": messages,
                    }
                )
            log.info(
                "batch_agent_run_running",
                job_id=ctx.job_id,
                rows=total,
                pending=len(items),
                attempt=ctx.attempt,
            )
            await ctx.progress(len(done), total, checkpoint=counts.model_dump(), flush=True)
            appending = asyncio.Lock()

            async def stored(_: int, row: dict[str, Any]) -> None:
                async with appending:  # one append at a time: the results dataset grows row by row
                    await self.datasetio.append_rows(AppendRowsRequest(dataset_id=results, rows=[row]))
                    if row.get("status") == "completed":
                        counts.completed += 1
                    else:
                        counts.failed += 1
                    await ctx.progress(
                        counts.completed + counts.failed, total, checkpoint=counts.model_dump()
                    )

            for row in bad:
                await stored(row["row_index"], row)
            self.rows_started += len(items)
            await ctx.map(ROW_WORK, items, concurrency=params["max_concurrency"], on_result=stored)
            log.info(
                "batch_agent_run_ended", job_id=ctx.job_id, completed=counts.completed, failed=counts.failed
            )
            return {"completed": counts.completed, "failed": counts.failed, "total": total}
        finally:
            self._live.pop(ctx.job_id, None)


def _bad_row(index: int, row: Any, reason: str) -> dict[str, Any]:
    return {
        "row_index": index,
        "input": row,
        "session_id": None,
        "turn_id": None,
        "status": "failed",
        "output": None,
        "steps": [],
        "tool_calls": [],
        "error": {"type": "BadRequestError", "message": reason, "status_code": 400},
        "usage": None,
    }


def _count(total: int, rows: list[dict[str, Any]]) -> BatchAgentRowCounts:
    completed = sum(1 for row in rows if row.get("status") == "completed")
    return BatchAgentRowCounts(total=total, completed=completed, failed=len(rows) - completed)


def _jsonl_rows(data: bytes, limit: int) -> list[Any]:
    """The JSON values of a JSONL file's non-blank lines (at most ``limit``); a line that is not JSON is a
    400 naming it."""
    rows: list[Any] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequestError(
                f"input_file_id: line {number} of the input file is not JSON ({exc}); each line must be one "
                "JSON object, a row",
                param="input_file_id",
            ) from None
        if len(rows) >= limit:
            break
    return rows
