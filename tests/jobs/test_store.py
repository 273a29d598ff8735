"""The jobs store's SQLite plumbing under cancellation: jobs are cancelled while they write."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from lamina.jobs import Job, JobStatus, jobs_store_config, open_jobs_store


def new_job() -> Job:
    return Job(id=f"job-{uuid.uuid4().hex}", kind="demo", status=JobStatus.scheduled, created_at=time.time())


async def test_a_write_cancelled_midway_leaves_no_lock_behind(tmp_path: Path) -> None:
    """A handler cancelled during a progress write must not leave its transaction open: other
    processes' writes would then fail with 'database is locked' after the busy timeout."""
    config = jobs_store_config({"type": "sqlite", "db_path": str(tmp_path / "jobs.db")}, tmp_path / "x.db")
    a, b = await open_jobs_store(config), await open_jobs_store(config)
    try:
        for i in range(20):
            write = asyncio.create_task(a.insert(new_job()))
            for _ in range(i % 4):  # cancel at each point of the write: before BEGIN, after it, ...
                await asyncio.sleep(0)
            write.cancel()
            await asyncio.gather(write, return_exceptions=True)
            await asyncio.wait_for(b.insert(new_job()), 3)  # the busy timeout is 5 s
            await a.insert(new_job())  # and the cancelled connection itself writes on
    finally:
        await a.close()
        await b.close()
