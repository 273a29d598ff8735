"""kill -9 in the middle of a job: a new process resumes it from its checkpoint (or fails it with the
reason), on SQLite and on a real PostgreSQL. The processes are real (tests/jobs/worker.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lamina.jobs import JobStatus

WORKER = Path(__file__).with_name("worker.py")
ITEMS = 30


def start_worker(settings: dict[str, Any], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with open(log, "a") as err:
        return subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(settings)],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            text=True,
            start_new_session=True,
        )


def items_by_pid(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    return [(int(i), int(pid)) for i, pid in (line.split() for line in log.read_text().splitlines())]


async def run_until_killed(
    store_section: dict[str, Any], kind: str, env: dict[str, str], tmp_path: Path, after_items: int
) -> tuple[str, int]:
    """Submit a job in a worker, SIGKILL the worker once ``after_items`` items are done; (job id, pid)."""
    items = tmp_path / "items.log"
    params = {"items": ITEMS, "delay": 0.05, "log": str(items)}
    settings = {"store": store_section, "lease_seconds": 1.0, "submit": {"kind": kind, "params": params}}
    first = start_worker(settings, env, tmp_path / "worker1.log")
    try:
        assert first.stdout is not None
        job_id = first.stdout.readline().strip()
        assert job_id.startswith("job-"), (tmp_path / "worker1.log").read_text()
        for _ in range(1200):  # up to 60 s on a loaded machine
            if len(items_by_pid(items)) >= after_items:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the worker did only {len(items_by_pid(items))} items")
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # no shutdown code runs: a crash
        first.wait(30)
    return job_id, first.pid


async def test_a_resumable_job_killed_mid_way_is_resumed_from_its_checkpoint_by_a_new_process(
    store_section: dict[str, Any], open_store, test_jobs_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(test_jobs_dir)}
    job_id, first_pid = await run_until_killed(store_section, "test.count", env, tmp_path, after_items=10)
    store = await open_store()
    crashed = await store.get(job_id)
    assert crashed is not None and crashed.status == JobStatus.in_progress, "left leased by the dead process"
    saved = crashed.checkpoint["next"]
    assert saved >= 10 and crashed.progress.done == saved

    second = start_worker({"store": store_section, "wait_for": job_id}, env, tmp_path / "worker2.log")
    assert second.wait(120) == 0, (tmp_path / "worker2.log").read_text()
    done = await store.get(job_id)
    assert done is not None and done.status == JobStatus.completed, done
    assert done.attempts == 2 and done.result == {"items": ITEMS, "resumed_at": saved, "attempt": 2}
    assert done.progress.done == ITEMS
    rows = items_by_pid(tmp_path / "items.log")
    assert {pid for _, pid in rows} == {first_pid, second.pid}, "two processes did the work"
    assert sorted(i for i, pid in rows if pid == second.pid) == list(range(saved, ITEMS)), (
        "the new process started at the checkpoint and did every later item once"
    )
    assert sorted(i for i, pid in rows if pid == first_pid and i < saved) == list(range(saved))


async def test_a_job_that_cannot_resume_fails_with_the_reason_after_a_kill(
    store_section: dict[str, Any], open_store, test_jobs_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(test_jobs_dir)}
    job_id, _ = await run_until_killed(store_section, "test.once", env, tmp_path, after_items=3)
    second = start_worker({"store": store_section, "wait_for": job_id}, env, tmp_path / "worker2.log")
    assert second.wait(120) == 0, (tmp_path / "worker2.log").read_text()
    store = await open_store()
    failed = await store.get(job_id)
    assert failed is not None and failed.status == JobStatus.failed
    assert failed.error == (
        "the server stopped while this job ran; it cannot resume (job kind 'test.once' does not resume); "
        "submit it again"
    )
    assert failed.progress.done >= 3 and failed.completed_at is not None


async def test_two_processes_on_one_store_run_each_job_once(
    store_section: dict[str, Any], open_store, test_jobs_dir: Path, tmp_path: Path
) -> None:
    """Two worker processes race for 40 jobs on one table: each job runs in exactly one of them."""
    from lamina.jobs import JobManager

    env = {**os.environ, "PYTHONPATH": str(test_jobs_dir)}
    settings = {"store": store_section, "until_finished": 40, "max_concurrent": 3}
    workers = [start_worker(settings, env, tmp_path / f"worker{n}.log") for n in (1, 2)]
    try:
        for n, worker in enumerate(workers, 1):
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready", (tmp_path / f"worker{n}.log").read_text()
        # Both are polling the table now: submit from a third manager, which never runs anything. Each
        # job takes 0.2 s, so neither process can drain all 40 before the other polls, even under load.
        submitter = JobManager(await open_store())
        submitter.register("test.count", lambda ctx: None)
        logs = [tmp_path / f"job{i}.log" for i in range(40)]
        jobs = [
            await submitter.submit("test.count", {"items": 1, "delay": 0.2, "log": str(log)}) for log in logs
        ]
        for n, worker in enumerate(workers, 1):
            assert worker.wait(120) == 0, (tmp_path / f"worker{n}.log").read_text()
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(30)
    runs = [items_by_pid(log) for log in logs]
    assert all(len(r) == 1 for r in runs), [r for r in runs if len(r) != 1]
    assert {r[0][1] for r in runs} == {w.pid for w in workers}, "both processes took jobs"
    store = await open_store()
    for job in jobs:
        done = await store.get(job.id)
        assert done is not None and done.status == JobStatus.completed and done.attempts == 1
