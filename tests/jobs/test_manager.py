"""The job manager on each store (SQLite file, real PostgreSQL): states, progress, cancel, limits,
order, failures, shutdown and resume, and two managers sharing one table."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lamina.errors import ConflictError, NotFoundError
from lamina.jobs import JobContext, JobManager, JobStatus

from .conftest import Clock

WAIT = 30.0  # "does not hang" bound for a job that takes milliseconds


class Gate:
    """Handlers that block until the test opens the gate, recording who started and how many ran at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started: list[str] = []
        self.running = 0
        self.peak = 0
        self.cancelled: list[str] = []
        self.changed = asyncio.Event()
        self.stopped = asyncio.Event()  # set when a handler sees its cancellation

    async def handler(self, ctx: JobContext) -> dict[str, Any]:
        self.started.append(ctx.params["name"])
        self.changed.set()
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled.append(ctx.params["name"])
            self.stopped.set()
            raise
        finally:
            self.running -= 1
        return {"name": ctx.params["name"]}

    async def until_started(self, n: int) -> None:
        async def wait() -> None:
            while len(self.started) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), WAIT)


async def test_a_job_goes_scheduled_in_progress_completed_with_times_and_result(managers) -> None:
    manager: JobManager = await managers()
    gate = Gate()
    manager.register("demo.gate", gate.handler)
    job = await manager.submit("demo.gate", {"name": "a"}, total=3, owner={"principal": "alice"})
    assert job.status == JobStatus.scheduled and job.id.startswith("job-")
    assert (await manager.get(job.id)).status == JobStatus.scheduled  # not started yet
    await manager.start()
    await gate.until_started(1)
    running = await manager.get(job.id)
    assert running.status == JobStatus.in_progress and running.started_at is not None
    assert running.attempts == 1 and running.completed_at is None
    gate.open.set()
    done = await manager.wait(job.id, within=WAIT)
    assert done.status == JobStatus.completed
    assert done.result == {"name": "a"} and done.error is None
    assert done.params == {"name": "a"} and done.owner == {"principal": "alice"}
    assert done.progress.total == 3
    assert done.created_at <= done.started_at <= done.completed_at


async def test_a_handler_that_raises_fails_the_job_with_its_message(managers) -> None:
    manager: JobManager = await managers()

    async def broken(ctx: JobContext) -> None:
        await ctx.progress(2, 5)
        raise ValueError(f"row 2 of {ctx.params['dataset']} has no 'answer' column")

    manager.register("demo.broken", broken)
    await manager.start()
    job = await manager.submit("demo.broken", {"dataset": "qa"})
    failed = await manager.wait(job.id, within=WAIT)
    assert failed.status == JobStatus.failed
    assert failed.error == "ValueError: row 2 of qa has no 'answer' column"
    assert failed.progress.done == 2 and failed.progress.total == 5  # where it stopped
    assert failed.completed_at is not None


async def test_a_result_that_is_not_json_fails_the_job_naming_why(managers) -> None:
    manager: JobManager = await managers()

    async def odd(ctx: JobContext) -> Any:
        return {"when": object()}

    manager.register("demo.odd", odd)
    await manager.start()
    job = await manager.submit("demo.odd")
    failed = await manager.wait(job.id, within=WAIT)
    assert failed.status == JobStatus.failed and "not JSON serializable" in (failed.error or "")


async def test_progress_is_visible_while_running_and_writes_are_throttled(managers) -> None:
    clock = Clock()
    manager: JobManager = await managers(clock=clock, progress_interval=1.0)
    reached = asyncio.Event()
    go_on = asyncio.Event()
    contexts: list[JobContext] = []

    async def rows(ctx: JobContext) -> int:
        contexts.append(ctx)
        for i in range(1000):  # 1,000 rows in no time: one write, not 1,000
            await ctx.progress(i + 1, 1000, checkpoint={"next": i + 1})
        reached.set()
        await go_on.wait()
        return 1000

    manager.register("demo.rows", rows)
    await manager.start()
    job = await manager.submit("demo.rows")
    await asyncio.wait_for(reached.wait(), WAIT)
    ctx = contexts[0]
    assert ctx.writes == 1, "the clock did not move: only the first progress call writes"
    stored = await manager.store.get(job.id)
    assert stored is not None and stored.progress.done == 1 and stored.checkpoint == {"next": 1}
    # The API shows the progress not written yet all the same.
    shown = await manager.get(job.id)
    assert shown.status == JobStatus.in_progress and shown.progress.done == 1000
    clock.now += 1.0  # the interval passed: the next call writes
    await ctx.progress(1000, checkpoint={"next": 1000})
    assert ctx.writes == 2
    stored = await manager.store.get(job.id)
    assert stored is not None and stored.progress.done == 1000 and stored.checkpoint == {"next": 1000}
    await ctx.progress(1000, checkpoint={"next": "flushed"}, flush=True)  # flush writes whatever the clock
    assert ctx.writes == 3 and (await manager.store.get(job.id)).checkpoint == {"next": "flushed"}
    go_on.set()
    assert (await manager.wait(job.id, within=WAIT)).progress.done == 1000


async def test_cancel_stops_the_running_handler_and_cancelling_again_is_a_conflict(managers) -> None:
    manager: JobManager = await managers()
    gate = Gate()
    manager.register("demo.gate", gate.handler)
    await manager.start()
    job = await manager.submit("demo.gate", {"name": "slow"})
    await gate.until_started(1)
    cancelled = await manager.cancel(job.id)
    assert cancelled.status == JobStatus.cancelled and cancelled.completed_at is not None
    assert gate.cancelled == ["slow"] and gate.running == 0, "the handler saw the cancellation and stopped"
    assert not manager._running, "no task of the job is left"
    with pytest.raises(ConflictError) as info:
        await manager.cancel(job.id)
    assert info.value.status == 409 and job.id in info.value.message
    assert "cancelled already" in info.value.message
    with pytest.raises(NotFoundError) as missing:
        await manager.cancel("job-nope")
    assert "job-nope" in missing.value.message
    with pytest.raises(NotFoundError):
        await manager.get("job-nope")


async def test_cancelling_a_scheduled_job_means_it_never_runs(managers) -> None:
    manager: JobManager = await managers(max_concurrent=1)
    gate = Gate()
    manager.register("demo.gate", gate.handler)
    await manager.start()
    first = await manager.submit("demo.gate", {"name": "first"})
    second = await manager.submit("demo.gate", {"name": "second"})
    await gate.until_started(1)
    assert (await manager.cancel(second.id)).status == JobStatus.cancelled
    gate.open.set()
    assert (await manager.wait(first.id, within=WAIT)).status == JobStatus.completed
    await asyncio.sleep(0.3)  # three scheduler polls: the cancelled job must not start
    assert gate.started == ["first"]
    assert (await manager.get(second.id)).status == JobStatus.cancelled


async def test_global_limit_holds_and_jobs_start_in_submission_order(managers) -> None:
    manager: JobManager = await managers(max_concurrent=2)
    gate = Gate()
    manager.register("demo.gate", gate.handler)
    names = [f"j{i}" for i in range(6)]
    jobs = [await manager.submit("demo.gate", {"name": n}) for n in names]
    await manager.start()
    await gate.until_started(2)
    await asyncio.sleep(0.3)  # more polls: still only two
    assert gate.started == ["j0", "j1"] and gate.running == 2
    statuses = [(await manager.get(j.id)).status for j in jobs]
    assert statuses == [JobStatus.in_progress] * 2 + [JobStatus.scheduled] * 4
    gate.open.set()
    for job in jobs:
        assert (await manager.wait(job.id, within=WAIT)).status == JobStatus.completed
    assert gate.started == names and gate.peak == 2


async def test_a_kind_at_its_limit_waits_while_other_kinds_run(managers) -> None:
    manager: JobManager = await managers(max_concurrent=3)
    slow, fast = Gate(), Gate()
    manager.register("demo.slow", slow.handler, max_concurrent=1)
    manager.register("demo.fast", fast.handler)
    a1 = await manager.submit("demo.slow", {"name": "a1"})
    a2 = await manager.submit("demo.slow", {"name": "a2"})
    b1 = await manager.submit("demo.fast", {"name": "b1"})
    await manager.start()
    await slow.until_started(1)
    await fast.until_started(1)
    await asyncio.sleep(0.3)
    assert slow.started == ["a1"] and fast.started == ["b1"]
    assert (await manager.get(a2.id)).status == JobStatus.scheduled
    slow.open.set()
    fast.open.set()
    for job in (a1, a2, b1):
        assert (await manager.wait(job.id, within=WAIT)).status == JobStatus.completed
    assert slow.peak == 1


async def test_listing_is_newest_first_filtered_and_paged(managers) -> None:
    manager: JobManager = await managers()
    gate = Gate()
    manager.register("demo.a", gate.handler)
    manager.register("demo.b", gate.handler)
    kinds = ["demo.a", "demo.b"] * 3
    ids = [(await manager.submit(kinds[i], {"name": str(i)})).id for i in range(5)]
    page, more = await manager.list(limit=2)
    assert [j.id for j in page] == [ids[4], ids[3]] and more
    page, more = await manager.list(after=page[-1].id, limit=2)
    assert [j.id for j in page] == [ids[2], ids[1]] and more
    page, more = await manager.list(after=page[-1].id, limit=2)
    assert [j.id for j in page] == [ids[0]] and not more
    only_a, _ = await manager.list(kind="demo.a")
    assert [j.id for j in only_a] == [ids[4], ids[2], ids[0]]
    await manager.cancel(ids[1])
    cancelled, _ = await manager.list(status=JobStatus.cancelled)
    assert [j.id for j in cancelled] == [ids[1]]
    with pytest.raises(Exception) as bad:
        await manager.list(after="job-unknown")
    assert "job-unknown" in str(bad.value)


async def test_submitting_an_unregistered_kind_or_non_json_params_is_refused(managers) -> None:
    manager: JobManager = await managers()
    manager.register("demo.ok", Gate().handler)
    with pytest.raises(ValueError, match=r"'demo.nope' is not registered \(registered: demo.ok\)"):
        await manager.submit("demo.nope")
    with pytest.raises(ValueError, match=r"params of a demo\.ok job must be JSON"):
        await manager.submit("demo.ok", {"when": object()})
    with pytest.raises(ValueError, match="registered already"):
        manager.register("demo.ok", Gate().handler)


async def test_a_job_of_a_kind_nobody_registers_fails_naming_the_kind(managers) -> None:
    before: JobManager = await managers()
    before.register("demo.removed", Gate().handler)
    job = await before.submit("demo.removed", {"name": "x"})  # never started: still scheduled
    after: JobManager = await managers()
    after.register("demo.other", Gate().handler)
    await after.start()
    failed = await after.wait(job.id, within=WAIT)
    assert failed.status == JobStatus.failed
    assert "no loaded provider registers job kind 'demo.removed'" in (failed.error or "")
    assert "demo.other" in (failed.error or "")


async def test_shutdown_releases_a_resumable_job_and_the_next_manager_resumes_from_its_checkpoint(
    managers,
) -> None:
    items_done: list[tuple[int, int]] = []  # (item, attempt)
    halfway = asyncio.Event()

    async def count(ctx: JobContext) -> dict[str, int]:
        start = (ctx.checkpoint or {}).get("next", 0)
        for i in range(start, 10):
            items_done.append((i, ctx.attempt))
            await ctx.progress(i + 1, 10, checkpoint={"next": i + 1})  # throttled: kept for shutdown
            if i == 4 and ctx.attempt == 1:
                halfway.set()
                await asyncio.Event().wait()  # stuck until shutdown
        return {"resumed_at": start}

    first: JobManager = await managers(progress_interval=60.0)
    first.register("demo.count", count, resumable=True)
    await first.start()
    job = await first.submit("demo.count", total=10)
    await asyncio.wait_for(halfway.wait(), WAIT)
    await first.shutdown()
    released = await first.store.get(job.id)
    assert released is not None and released.status == JobStatus.scheduled
    assert released.checkpoint == {"next": 5}, "the pending (throttled) checkpoint was saved at shutdown"
    assert released.progress.done == 5

    second: JobManager = await managers()
    second.register("demo.count", count, resumable=True)
    await second.start()
    done = await second.wait(job.id, within=WAIT)
    assert done.status == JobStatus.completed and done.result == {"resumed_at": 5}
    assert done.attempts == 2 and done.progress.done == 10
    assert [i for i, attempt in items_done if attempt == 2] == list(range(5, 10)), "finished items not redone"


async def test_shutdown_fails_a_job_that_cannot_resume_with_the_reason(managers) -> None:
    manager: JobManager = await managers()
    gate = Gate()
    manager.register("demo.gate", gate.handler)
    await manager.start()
    job = await manager.submit("demo.gate", {"name": "once"})
    await gate.until_started(1)
    await manager.shutdown()
    failed = await manager.store.get(job.id)
    assert failed is not None and failed.status == JobStatus.failed
    assert "the server stopped while this job ran; it cannot resume" in (failed.error or "")


async def test_an_expired_lease_is_resumed_or_failed_by_another_manager(managers) -> None:
    """A manager that stops heartbeating (its process froze) loses its jobs to the next scan."""
    clock = Clock()
    frozen: JobManager = await managers(clock=clock, lease_seconds=5.0)
    gate = Gate()
    frozen.register("demo.resumable", gate.handler, resumable=True)
    frozen.register("demo.once", gate.handler)
    await frozen.start()
    resumable = await frozen.submit("demo.resumable", {"name": "r"})
    once = await frozen.submit("demo.once", {"name": "o"})
    await gate.until_started(2)
    for task in frozen._tasks:  # freeze: no heartbeat, no scheduling
        task.cancel()
    clock.now += 6.0  # past the lease
    other: JobManager = await managers(clock=clock, lease_seconds=5.0)
    second = Gate()
    second.open.set()
    other.register("demo.resumable", second.handler, resumable=True)
    other.register("demo.once", second.handler)
    await other.start()
    assert (await other.wait(resumable.id, within=WAIT)).status == JobStatus.completed
    assert second.started == ["r"]
    failed = await other.get(once.id)
    assert failed.status == JobStatus.failed and "cannot resume" in (failed.error or "")
    # The frozen manager's handler is told at its next write that the job is not its own any more.
    ctx = frozen._running[resumable.id].context
    with pytest.raises(asyncio.CancelledError):
        await ctx.progress(1, flush=True)


async def test_two_managers_on_one_table_never_run_the_same_job_twice(managers) -> None:
    runs: list[tuple[str, str]] = []  # (job id, manager)

    def handler_for(name: str) -> Any:
        async def work(ctx: JobContext) -> str:
            runs.append((ctx.job_id, name))
            await asyncio.sleep(0.005)
            return name

        return work

    a: JobManager = await managers(max_concurrent=3, poll_seconds=0.02)
    b: JobManager = await managers(max_concurrent=3, poll_seconds=0.02)
    a.register("demo.work", handler_for("a"))
    b.register("demo.work", handler_for("b"))
    await a.start()
    await b.start()
    jobs = [await (a if i % 2 else b).submit("demo.work", {"i": i}) for i in range(60)]
    for job in jobs:
        assert (await a.wait(job.id, within=WAIT)).status == JobStatus.completed
    ran = [job_id for job_id, _ in runs]
    assert sorted(ran) == sorted(j.id for j in jobs), "every job ran exactly once"
    assert {m for _, m in runs} == {"a", "b"}, "both managers took jobs"


async def test_a_cancel_through_another_manager_stops_the_handler_where_it_runs(managers) -> None:
    runner: JobManager = await managers(lease_seconds=0.3)  # heartbeat every 0.1 s
    gate = Gate()
    runner.register("demo.gate", gate.handler)
    await runner.start()
    job = await runner.submit("demo.gate", {"name": "far"})
    await gate.until_started(1)
    other: JobManager = await managers(lease_seconds=0.3)
    other.register("demo.gate", Gate().handler)
    assert (await other.cancel(job.id)).status == JobStatus.cancelled
    await asyncio.wait_for(gate.stopped.wait(), WAIT)
    assert gate.cancelled == ["far"]
    assert (await runner.get(job.id)).status == JobStatus.cancelled, "the runner did not overwrite it"


async def test_the_heartbeat_keeps_a_quiet_long_job_its_own(managers) -> None:
    """A handler that reports no progress for several lease periods is not taken over while its
    process lives."""
    runs: list[str] = []

    async def quiet(ctx: JobContext) -> str:
        runs.append(ctx.job_id)
        await asyncio.sleep(1.5)  # five leases of 0.3 s without a progress call
        return "done"

    a: JobManager = await managers(lease_seconds=0.3)
    b: JobManager = await managers(lease_seconds=0.3)
    for manager in (a, b):
        manager.register("demo.quiet", quiet, resumable=True)
    await a.start()
    job = await a.submit("demo.quiet")
    await b.start()
    done = await a.wait(job.id, within=WAIT)
    assert done.status == JobStatus.completed and done.attempts == 1 and runs == [job.id]
