"""The job manager: providers register job kinds and submit jobs; it runs them, within limits, and
keeps every job's state in the jobs store so that a restart (or another replica) picks them up.

States: scheduled -> in_progress -> completed | failed | cancelled. Rules:

- ``submit`` stores a scheduled job. The scheduler starts scheduled jobs in submission order, up to
  ``max_concurrent`` in this process and each kind's own ``max_concurrent``; a kind at its limit
  does not hold back the jobs of other kinds.
- A running job holds a lease (this process's ``instance_id`` and an expiry), renewed by every
  progress write and by a heartbeat every third of ``lease_seconds``. A job whose lease ran out lost
  its process (killed, or cut off from the database): the next scan (at start-up and every
  ``poll_seconds``, in any replica) puts it back to scheduled, checkpoint kept, when its kind is
  registered and resumable, and marks it failed with the reason otherwise. Never stuck in_progress.
- ``cancel`` marks the job cancelled in the store and cancels its task when it runs here; a replica
  running it notices at its next progress write or heartbeat and stops the handler.
- ``shutdown`` stops the handlers: a resumable job goes back to scheduled with its last checkpoint (the
  next start, or another replica, resumes it at once); any other fails with the reason.
- A scheduled job whose kind no provider registers here fails, naming the kind. Replicas sharing one
  store should therefore run the same providers.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from lamina.apis.jobs import Job, JobProgress, JobStatus
from lamina.auth.principal import Principal
from lamina.errors import ConflictError, NotFoundError
from lamina.jobs.context import JobContext, JobHandler, JobLost
from lamina.jobs.executor import InlineExecutor, JobExecutor
from lamina.jobs.store import JobsStore
from lamina.jobs.work import WorkApis, WorkEnvironment
from lamina.request_context import PRINCIPAL
from lamina.storage.kvstore import StorageError
from lamina.tasks import cancel_until_done
from lamina.telemetry import job_spans, metrics

log = structlog.get_logger(__name__)

# How long ``cancel`` waits for a handler here to stop before answering (it goes on stopping after).
CANCEL_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class JobKind:
    """A registered kind of job."""

    name: str
    handler: JobHandler
    resumable: bool = False
    max_concurrent: int | None = None


@dataclass
class _Running:
    context: JobContext
    kind: JobKind
    task: asyncio.Task | None = None
    stop: str | None = None  # why its task was cancelled: cancel | lost | shutdown
    finishing: bool = False


def new_instance_id() -> str:
    """Names this process in lease records: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"there is no job with id {job_id!r}; list jobs with GET /v1/jobs", param="job_id")


def _submitting_principal() -> dict[str, Any]:
    principal = PRINCIPAL.get()
    if principal is None:
        return {}
    return {"principal": principal.id, "attributes": {k: list(v) for k, v in principal.attributes.items()}}


def _submitter(owner: dict[str, Any] | None) -> Principal | None:
    """The principal that submitted a job, from its ``owner`` record (None: submitted without auth)."""
    if not owner or not isinstance(owner.get("principal"), str):
        return None
    attributes = owner.get("attributes") or {}
    return Principal(owner["principal"], {k: list(v) for k, v in attributes.items()}, via="job")


class JobManager:
    def __init__(
        self,
        store: JobsStore,
        *,
        executor: JobExecutor | None = None,
        max_concurrent: int = 4,
        lease_seconds: float = 15.0,
        progress_interval: float = 1.0,
        poll_seconds: float = 2.0,
        instance_id: str | None = None,
        clock: Callable[[], float] = time.time,
        work: WorkEnvironment | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self.store = store
        self.executor: JobExecutor = executor or InlineExecutor()
        # What context.map hands the executor: the stack's routers (and run config); none: an empty one.
        self.work = work or WorkEnvironment(WorkApis({}, ()))
        self.max_concurrent = max_concurrent
        self.lease_seconds = lease_seconds
        self.progress_interval = progress_interval
        self.poll_seconds = poll_seconds
        self.instance_id = instance_id or new_instance_id()
        self._clock = clock
        self._kinds: dict[str, JobKind] = {}
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._finished = asyncio.Condition()
        self._tasks: list[asyncio.Task] = []
        self._last_scan = 0.0
        self._started = False
        self._closing = False
        # Jobs by state for the lamina.jobs gauge: refreshed by the scheduler at most every poll_seconds
        # while metrics are on, read from here by every scrape (never a query per scrape).
        self._counts: dict[str, int] = {}
        self._counted_at = 0.0
        self._stop_observing: Callable[[], None] | None = None

    # -- what providers call -------------------------------------------------------------------

    def register(
        self, kind: str, handler: JobHandler, *, resumable: bool = False, max_concurrent: int | None = None
    ) -> None:
        """Run jobs of ``kind`` with ``handler`` (``async def handler(context) -> result``).

        ``resumable``: after a crash or a shutdown the job runs again from its last saved checkpoint
        (``context.checkpoint``); otherwise it fails with the reason. ``max_concurrent``: at most this
        many jobs of the kind run at once in this process (within the manager's own limit).
        """
        if kind in self._kinds:
            raise ValueError(f"job kind {kind!r} is registered already; each kind has one handler")
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError(f"max_concurrent of job kind {kind!r} must be at least 1, got {max_concurrent}")
        self._kinds[kind] = JobKind(kind, handler, resumable, max_concurrent)
        self._wake.set()

    @property
    def kinds(self) -> dict[str, JobKind]:
        return dict(self._kinds)

    async def submit(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        total: int | None = None,
        owner: dict[str, Any] | None = None,
    ) -> Job:
        """Store a scheduled job of a registered ``kind`` and return it; it starts when a slot is free."""
        if kind not in self._kinds:
            known = ", ".join(sorted(self._kinds)) or "none"
            raise ValueError(f"job kind {kind!r} is not registered (registered: {known}); register it first")
        params = params or {}
        for name, value in (("params", params), ("owner", owner or {})):
            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} of a {kind} job must be JSON: {exc}") from None
        # The submitting request's trace context (telemetry on): the job's own trace links back to it;
        # and its caller (auth on), so access control knows whose job it is (lamina.access.guard).
        owner = {**(owner or {}), **job_spans.submitter(), **_submitting_principal()}
        job = Job(
            id=f"job-{uuid.uuid4().hex}",
            kind=kind,
            status=JobStatus.scheduled,
            progress=JobProgress(total=total),
            created_at=self._clock(),
            params=params,
            owner=owner or {},
        )
        await self.store.insert(job)
        self._wake.set()
        return job

    async def get(self, job_id: str) -> Job:
        """The job as stored: every replica shows the same, and progress never goes back after a crash
        (it lags the handler by up to ``progress_interval``)."""
        job = await self.store.get(job_id)
        if job is None:
            raise _not_found(job_id)
        return job

    async def list(
        self,
        *,
        kind: str | None = None,
        status: JobStatus | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> tuple[list[Job], bool]:
        return await self.store.list(kind=kind, status=status, after=after, limit=limit)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a scheduled or in_progress job; its handler is cancelled and awaited (up to
        CANCEL_WAIT_SECONDS) when it runs here. 404 for an unknown id, 409 for a finished job."""
        job = await self.get(job_id)
        if job.status.finished or not await self.store.cancel(job_id, self._clock(), "cancelled on request"):
            job = await self.get(job_id)
            if job.status.finished:
                raise ConflictError(
                    f"job {job_id} is {job.status.value} already; only scheduled or in_progress jobs can be "
                    f"cancelled",
                    param="job_id",
                )
        running = self._running.get(job_id)
        if running is not None and running.task is not None:
            running.stop = running.stop or "cancel"
            running.task.cancel()
            await asyncio.wait({running.task}, timeout=CANCEL_WAIT_SECONDS)
        log.info("job_cancelled", job_id=job_id, kind=job.kind)
        return await self.get(job_id)

    async def wait(self, job_id: str, within: float | None = None) -> Job:
        """The job once it is finished (completed, failed or cancelled); TimeoutError after ``within`` s."""

        async def finished() -> Job:
            while True:
                job = await self.get(job_id)
                if job.status.finished:
                    return job
                async with self._finished:
                    # Woken by a job ending here; polled for jobs that run elsewhere.
                    await _wait_at_most(self._finished.wait(), min(self.poll_seconds, 0.5))

        return await asyncio.wait_for(finished(), within)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the executor, resume or fail what a stopped process left, and start scheduling."""
        if self._started:
            return
        self._started = True
        await self.executor.start()
        prepare = getattr(self.executor, "prepare", None)  # optional: warm up with the work environment
        if prepare is not None:
            await prepare(self.work)
        await self._scan_expired()
        self._stop_observing = metrics.observe_jobs(self.job_counts)
        self._tasks = [
            asyncio.create_task(self._schedule_loop(), name="lamina-jobs-scheduler"),
            asyncio.create_task(self._heartbeat_loop(), name="lamina-jobs-heartbeat"),
        ]
        log.info("jobs_started", instance=self.instance_id, kinds=sorted(self._kinds))

    async def shutdown(self) -> None:
        """Stop scheduling and every handler here: resumable jobs go back to scheduled (checkpoint
        kept), the others fail with the reason. The store stays open (its owner closes it)."""
        if self._closing:
            return
        self._closing = True
        if self._stop_observing is not None:
            self._stop_observing()
        await cancel_until_done(self._tasks)
        running = [r for r in self._running.values() if r.task is not None]
        for r in running:
            r.stop = r.stop or "shutdown"
        await cancel_until_done([r.task for r in running if r.task is not None])
        try:
            await self.executor.shutdown()
        except Exception as exc:  # keep shutting down
            log.warning("job_executor_shutdown_failed", error=f"{type(exc).__name__}: {exc}")

    # -- scheduling ----------------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while not self._closing:
            self._wake.clear()
            try:
                if self._clock() - self._last_scan >= self.poll_seconds:
                    await self._scan_expired()
                await self._fill()
                if (
                    metrics.instruments() is not None
                    and self._clock() - self._counted_at >= self.poll_seconds
                ):
                    await self._count()
            except StorageError as exc:  # the database is down: try again at the next poll
                log.warning("jobs_schedule_failed", error=str(exc))
            await _wait_at_most(self._wake.wait(), self.poll_seconds)

    async def _scan_expired(self) -> None:
        """Resume (back to scheduled) or fail the in_progress jobs whose lease ran out."""
        now = self._last_scan = self._clock()
        for job_id, kind_name in await self.store.expired(now):
            kind = self._kinds.get(kind_name)
            if kind is not None and kind.resumable:
                if await self.store.requeue_expired(job_id, now):
                    log.info("job_requeued", job_id=job_id, kind=kind_name, reason="its server stopped")
                continue
            if kind is None:
                reason = (
                    f"the server stopped while this job ran, and no loaded provider registers job kind "
                    f"{kind_name!r} to resume it; configure the provider that runs {kind_name} jobs and "
                    f"submit it again"
                )
            else:
                reason = (
                    f"the server stopped while this job ran; it cannot resume (job kind {kind_name!r} "
                    f"does not resume); submit it again"
                )
            if await self.store.fail_expired(job_id, now, reason):
                log.warning("job_failed", job_id=job_id, kind=kind_name, error=reason)

    def job_counts(self) -> dict[str, int]:
        """Jobs by state as last counted (every state present, so a drained state reads 0)."""
        return {state.value: self._counts.get(state.value, 0) for state in JobStatus}

    async def _count(self) -> None:
        self._counted_at = self._clock()
        self._counts = await self.store.count_by_status()

    def _free_kinds(self) -> list[str]:
        counts: dict[str, int] = {}
        for r in self._running.values():
            counts[r.kind.name] = counts.get(r.kind.name, 0) + 1
        return [
            name
            for name, kind in self._kinds.items()
            if kind.max_concurrent is None or counts.get(name, 0) < kind.max_concurrent
        ]

    async def _fill(self) -> None:
        """Start the oldest scheduled jobs there is room for; fail those of unregistered kinds."""
        if self._closing:
            return
        for job in await self.store.scheduled(100, kinds=list(self._kinds), exclude=True):
            reason = (
                f"no loaded provider registers job kind {job.kind!r} (registered here: "
                f"{', '.join(sorted(self._kinds)) or 'none'}); configure the provider that runs "
                f"{job.kind} jobs and submit it again"
            )
            if await self.store.fail_scheduled(job.id, self._clock(), reason):
                log.warning("job_failed", job_id=job.id, kind=job.kind, error=reason)
        free = self.max_concurrent - len(self._running)
        kinds = self._free_kinds()
        if free <= 0 or not kinds:
            return
        for job in await self.store.scheduled(min(free * len(kinds), 500), kinds=kinds):
            if self._closing or len(self._running) >= self.max_concurrent:
                return
            if job.kind not in self._free_kinds():
                continue
            now = self._clock()
            if await self.store.claim(job.id, self.instance_id, now, now + self.lease_seconds):
                self._launch(job, now)

    def _launch(self, job: Job, now: float) -> None:
        started = job.started_at or now
        job = job.model_copy(
            update={"status": JobStatus.in_progress, "attempts": job.attempts + 1, "started_at": started}
        )
        context = JobContext(
            job,
            self.store,
            self.instance_id,
            lease_seconds=self.lease_seconds,
            progress_interval=self.progress_interval,
            clock=self._clock,
            executor=self.executor,
            work=self.work,
        )
        running = _Running(context, self._kinds[job.kind])
        self._running[job.id] = running
        running.task = asyncio.create_task(self._run(running), name=f"lamina-job-{job.id}")
        log.info("job_started", job_id=job.id, kind=job.kind, attempt=job.attempts)

    async def _run(self, running: _Running) -> None:
        ctx, kind = running.context, running.kind
        span = job_spans.start(ctx.job)  # None when telemetry is off
        # A job runs as its submitter (auth on): what it creates (a batch's output file, a results dataset)
        # is that caller's (lamina.access.owners.record_for_caller), after a restart too.
        as_submitter = PRINCIPAL.set(_submitter(ctx.job.owner))
        try:
            try:
                with job_spans.current(span):
                    result = await self.executor.run(kind.handler, ctx)
                json.dumps(result)
            except asyncio.CancelledError as exc:
                job_spans.end(span, exc)
                await self._stopped(running)
            except Exception as exc:
                job_spans.end(span, exc)
                await self._finish(running, JobStatus.failed, error=_describe(exc))
            else:
                job_spans.end(span, None)
                await self._finish(running, JobStatus.completed, result=result)
        except StorageError as exc:  # the job's lease runs out and the next scan settles it
            log.warning("job_state_not_saved", job_id=ctx.job_id, error=str(exc))
        finally:
            PRINCIPAL.reset(as_submitter)
            self._running.pop(ctx.job_id, None)
            self._wake.set()
            async with self._finished:
                self._finished.notify_all()

    async def _finish(
        self, running: _Running, status: JobStatus, *, result: Any = None, error: str | None = None
    ) -> None:
        running.finishing = True
        ctx = running.context
        saved = await self.store.finish(
            ctx.job_id, self.instance_id, status, self._clock(), done=ctx.done, total=ctx.total,
            result=result, error=error,
        )  # fmt: skip
        if not saved:  # cancelled (or taken over) meanwhile: its state is someone else's to set
            log.info("job_result_dropped", job_id=ctx.job_id, kind=ctx.kind, status=status.value)
        elif status == JobStatus.failed:
            log.warning("job_failed", job_id=ctx.job_id, kind=ctx.kind, error=error)
        else:
            log.info("job_completed", job_id=ctx.job_id, kind=ctx.kind, done=ctx.done)

    async def _stopped(self, running: _Running) -> None:
        """The handler was cancelled: settle the job by why."""
        ctx, kind = running.context, running.kind
        reason = running.stop or ("lost" if ctx.lost else None)
        if reason in ("cancel", "lost"):
            return  # the store says cancelled already, or another process holds the job now
        if reason == "shutdown" and kind.resumable:
            try:
                await ctx.flush()  # the last checkpoint, so the resume starts from it
            except JobLost:
                return
            if await self.store.release(ctx.job_id, self.instance_id):
                log.info("job_released", job_id=ctx.job_id, kind=ctx.kind, done=ctx.done)
            return
        if reason == "shutdown":
            error = (
                f"the server stopped while this job ran; it cannot resume (job kind {kind.name!r} does not "
                f"resume); submit it again"
            )
        else:
            error = "the job's handler was cancelled by something other than a cancel request or a shutdown"
        await self._finish(running, JobStatus.failed, error=error)

    async def _heartbeat_loop(self) -> None:
        interval = max(self.lease_seconds / 3, 0.05)
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                await self._heartbeat()
            except StorageError as exc:
                log.warning("jobs_heartbeat_failed", error=str(exc))

    async def _heartbeat(self) -> None:
        """Renew this process's leases, write throttled progress, and stop the jobs that are no
        longer ours (cancelled through another replica, or taken over after a stall)."""
        mine = [r for r in self._running.values() if not r.finishing]
        if not mine:
            return
        await self.store.renew(self.instance_id, self._clock() + self.lease_seconds)
        held = await self.store.held(self.instance_id)
        for r in mine:
            if r.context.job_id not in held and not r.finishing and r.task is not None:
                r.stop = r.stop or "lost"
                r.task.cancel()
                log.info("job_stopped_elsewhere", job_id=r.context.job_id, kind=r.context.kind)
            elif not r.finishing:
                try:
                    await r.context.flush()
                except JobLost:
                    if r.task is not None:
                        r.stop = r.stop or "lost"
                        r.task.cancel()


async def _wait_at_most(awaitable: Any, seconds: float) -> None:
    """Await ``awaitable`` for up to ``seconds``. Not ``asyncio.wait_for`` in a loop: on Python 3.11 a
    cancel that lands as its timeout fires becomes a TimeoutError, the loop goes on, and the task
    never stops (a manager's shutdown then hung on it). ``asyncio.timeout`` tells the two apart."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        pass


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
