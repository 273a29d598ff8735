"""Jobs: long-running work (eval runs, batches, training, data generation) as persisted records.

The server answers these routes itself from its job manager (``lamina.jobs``); a provider submits the
jobs (an eval provider's ``run_eval``, say) and the routes show them, whatever submitted them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from lamina.access.declarations import lists, reads, updates
from lamina.apis.webmethod import webmethod


class JobStatus(StrEnum):
    """scheduled -> in_progress -> completed | failed | cancelled (Llama Stack's job status names)."""

    scheduled = "scheduled"
    in_progress = "in_progress"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.completed, JobStatus.failed, JobStatus.cancelled)


class JobProgress(BaseModel):
    done: int = Field(default=0, ge=0, description="Items finished so far.")
    total: int | None = Field(default=None, ge=0, description="Items in all; null while unknown.")


class Job(BaseModel):
    """One job. Times are seconds since the epoch; ``params``, ``result`` and ``checkpoint`` are the
    small JSON values the submitting provider and its handler put there."""

    object: Literal["job"] = "job"
    id: str
    kind: str = Field(description="What the job does, e.g. `eval.run`: the provider's registered kind.")
    status: JobStatus
    progress: JobProgress = Field(default_factory=JobProgress)
    created_at: float
    started_at: float | None = Field(default=None, description="When its first run started.")
    completed_at: float | None = Field(default=None, description="When it reached a final status.")
    error: str | None = Field(default=None, description="Why it failed (or was cancelled), for a person.")
    params: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    checkpoint: Any = Field(default=None, description="What its handler saved to resume from.")
    attempts: int = Field(default=0, description="Runs started: more than 1 when it was resumed.")
    owner: dict[str, Any] = Field(default_factory=dict, description="Who submitted it (for access control).")


class ListJobsRequest(BaseModel):
    kind: str | None = Field(default=None, description="Only jobs of this kind.")
    status: JobStatus | None = Field(default=None, description="Only jobs in this status.")
    after: str | None = Field(default=None, description="A job id: the page after it (a page's last_id).")
    limit: int = Field(default=20, ge=1, le=1000)


class ListJobsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Job]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class JobIdRequest(BaseModel):
    job_id: str = Field(min_length=1)


class Jobs(Protocol):
    """Jobs, newest first; the server answers these itself from the job manager."""

    @webmethod("GET", "/v1/jobs", request=ListJobsRequest, response=ListJobsResponse, access=lists("job"))
    async def list_jobs(self, request: ListJobsRequest) -> ListJobsResponse:
        """List jobs newest first, optionally of one kind and status, a page at a time."""
        ...

    @webmethod("GET", "/v1/jobs/{job_id}", request=JobIdRequest, response=Job, access=reads("job", "job_id"))
    async def get_job(self, request: JobIdRequest) -> Job:
        """Get one job: its status, progress, times, error and result."""
        ...

    @webmethod(
        "POST",
        "/v1/jobs/{job_id}/cancel",
        request=JobIdRequest,
        response=Job,
        access=updates("job", "job_id"),
    )
    async def cancel_job(self, request: JobIdRequest) -> Job:
        """Cancel a scheduled or running job: its work stops and its status becomes cancelled."""
        ...
