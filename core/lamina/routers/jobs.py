"""The Jobs API: the server answers it itself, from the stack's job manager."""

from __future__ import annotations

from typing import Any

from lamina.apis.jobs import Job, JobIdRequest, ListJobsRequest, ListJobsResponse
from lamina.errors import ServiceUnavailableError
from lamina.jobs.manager import JobManager


class JobsImpl:
    def __init__(self, stack: Any) -> None:  # lamina.stack.Stack, which builds this
        self.stack = stack

    @property
    def manager(self) -> JobManager:
        manager = self.stack.jobs
        if manager is None:
            raise ServiceUnavailableError(
                "the job manager is not running (the server is starting or stopping); retry in a moment"
            )
        return manager

    async def list_jobs(self, request: ListJobsRequest) -> ListJobsResponse:
        jobs, has_more = await self.manager.list(
            kind=request.kind, status=request.status, after=request.after, limit=request.limit
        )
        return ListJobsResponse(
            data=jobs,
            first_id=jobs[0].id if jobs else None,
            last_id=jobs[-1].id if jobs else None,
            has_more=has_more,
        )

    async def get_job(self, request: JobIdRequest) -> Job:
        return await self.manager.get(request.job_id)

    async def cancel_job(self, request: JobIdRequest) -> Job:
        return await self.manager.cancel(request.job_id)
