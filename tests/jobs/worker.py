"""A process running a job manager over a jobs store, for the kill -9 tests (not a test module).

``python worker.py '<json>'`` with ``store`` (a ``jobs.store`` section), optional ``submit`` ({kind,
params}: submitted, its id printed on stdout), optional ``wait_for`` (a job id, or a list of them:
exit 0 once they are finished), ``until_finished`` (a number: print ``ready``, then exit 0 once that
many test.count jobs are finished), ``lease_seconds`` and ``max_concurrent``. The job kinds are
lamina-test-jobs' (its directory on PYTHONPATH).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import structlog
from lamina_test_jobs.provider import count

from lamina.jobs import JobManager, jobs_store_config, open_jobs_store


async def main(settings: dict) -> None:
    store = await open_jobs_store(jobs_store_config(settings["store"], Path("unused.db")))
    manager = JobManager(
        store,
        lease_seconds=settings.get("lease_seconds", 1.0),
        poll_seconds=0.1,
        max_concurrent=settings.get("max_concurrent", 4),
    )
    manager.register("test.count", count, resumable=True)
    manager.register("test.once", count)
    await manager.start()
    try:
        if settings.get("submit"):
            job = await manager.submit(settings["submit"]["kind"], settings["submit"]["params"])
            print(job.id, flush=True)
        if settings.get("until_finished"):
            print("ready", flush=True)
            while True:
                jobs, _ = await manager.list(kind="test.count", limit=1000)
                if sum(j.status.finished for j in jobs) >= settings["until_finished"]:
                    return
                await asyncio.sleep(0.1)
        if settings.get("wait_for"):
            wait_for = settings["wait_for"]
            for job_id in [wait_for] if isinstance(wait_for, str) else wait_for:
                await manager.wait(job_id, within=120)
            return
        await asyncio.Event().wait()  # until killed
    finally:
        await manager.shutdown()
        await store.close()


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: the job id
    asyncio.run(main(json.loads(sys.argv[1])))
