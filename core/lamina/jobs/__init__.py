"""Jobs: long-running work (eval runs, batches, post training, synthetic data) persisted in the jobs store.

A provider registers a kind with a handler and submits jobs of it through ``context.jobs`` (its
``ProviderContext``); the manager runs them on the configured executor, keeps their state, progress
and checkpoints in the store, and resumes or fails what a stopped server left. docs/jobs.md has the
whole story.
"""

from lamina.apis.jobs import Job, JobProgress, JobStatus
from lamina.jobs.context import JobContext, JobHandler, JobLost
from lamina.jobs.executor import INLINE, InlineExecutor, JobExecutor
from lamina.jobs.manager import JobKind, JobManager
from lamina.jobs.store import JobsStore, jobs_store_config, open_jobs_store
from lamina.jobs.work import WorkApis, WorkEnvironment, work_function

__all__ = [
    "INLINE",
    "InlineExecutor",
    "Job",
    "JobContext",
    "JobExecutor",
    "JobHandler",
    "JobKind",
    "JobLost",
    "JobManager",
    "JobProgress",
    "JobStatus",
    "JobsStore",
    "WorkApis",
    "WorkEnvironment",
    "jobs_store_config",
    "open_jobs_store",
    "work_function",
]
