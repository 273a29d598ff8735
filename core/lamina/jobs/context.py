"""What a job handler gets: its job's params and saved checkpoint, and ``progress`` to report and save.

Progress is persisted at most once per ``progress_interval`` seconds (a 1,000-row job calling
``progress`` after every row writes a few times, not 1,000 times, a second); ``flush=True`` writes at
once, for a checkpoint that must not be lost (a batch whose finished requests must never be sent
again). Whatever is pending is written when the job ends, is released at shutdown or at the next
heartbeat. Every write also renews the job's lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lamina.apis.jobs import Job

_KEEP: Any = object()

JobHandler = Callable[["JobContext"], Awaitable[Any]]
"""``async def handler(context: JobContext) -> result``: the result (small JSON) is stored with the job."""


class JobLost(asyncio.CancelledError):
    """Raised by ``progress`` when the job is no longer this process's to run: it was cancelled (maybe
    through another replica) or its lease expired and another replica took it. A CancelledError, so
    handlers stop as on any cancellation."""


class JobContext:
    """A running job as its handler sees it."""

    def __init__(
        self,
        job: Job,
        store: Any,  # lamina.jobs.store.JobsStore
        holder: str,
        *,
        lease_seconds: float,
        progress_interval: float,
        clock: Callable[[], float] = time.time,
        executor: Any = None,  # lamina.jobs.executor.JobExecutor: where ``map`` runs items
        work: Any = None,  # lamina.jobs.work.WorkEnvironment
    ) -> None:
        self.job = job
        self._executor = executor
        self._work = work
        self._store = store
        self._holder = holder
        self._lease = lease_seconds
        self._interval = progress_interval
        self._clock = clock
        self._done = job.progress.done
        self._total = job.progress.total
        self._checkpoint = job.checkpoint
        self._checkpoint_pending = False
        self._pending = False
        self._last_write = 0.0
        self._lock = asyncio.Lock()
        self.lost = False
        self.writes = 0  # progress writes made (for tests and benchmarks)

    # -- what the handler reads ----------------------------------------------------------------

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def kind(self) -> str:
        return self.job.kind

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    @property
    def checkpoint(self) -> Any:
        """The last checkpoint saved (None on a first run): resume from here."""
        return self._checkpoint

    @property
    def executor_name(self) -> str:
        """The name of the executor running this job (``inline``, ``ray``, ...): a handler whose heavy step
        can run on that executor's resources (a Ray actor, say) picks where to run it by this."""
        return str(getattr(self._executor, "name", None) or "inline")

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 after one resume, ..."""
        return self.job.attempts

    @property
    def done(self) -> int:
        return self._done

    @property
    def total(self) -> int | None:
        return self._total

    # -- what the handler calls ----------------------------------------------------------------

    async def progress(
        self, done: int, total: int | None = None, checkpoint: Any = _KEEP, *, flush: bool = False
    ) -> None:
        """Report ``done`` items finished (of ``total``, when given) and save ``checkpoint`` (small JSON)
        to resume from. Written at most once per progress interval unless ``flush``. Raises ``JobLost``
        (a CancelledError) when the job was cancelled or taken over: stop working then."""
        if done < 0 or (total is not None and total < 0):
            raise ValueError(f"progress: done ({done}) and total ({total}) must not be negative")
        self._done = done
        if total is not None:
            self._total = total
        if checkpoint is not _KEEP:
            self._checkpoint = checkpoint
            self._checkpoint_pending = True
        self._pending = True
        if self.lost:
            raise JobLost(f"job {self.job_id} is no longer this server's to run")
        if flush or self._clock() - self._last_write >= self._interval:
            await self.flush()

    async def map(
        self,
        function: str,
        items: Sequence[dict[str, Any]],
        *,
        concurrency: int,
        on_result: Callable[[int, Any], Awaitable[None]] | None = None,
        yield_to_clients: bool = True,
    ) -> None:
        """Run the work function ``function`` on every item, at most ``concurrency`` at once, on the
        job's executor (here, or fanned out to a cluster); ``on_result(index, result)`` runs here as each
        finishes. ``yield_to_clients``: while client requests are in flight, start one item at a time
        (work no client waits on). The rules are lamina.jobs.work's."""
        from lamina.jobs.executor import executor_map

        if self._work is None:
            raise RuntimeError(f"job {self.job_id}: this context was made without a work environment")
        await executor_map(
            self._executor,
            function,
            items,
            work=self._work,
            concurrency=concurrency,
            on_result=on_result,
            yield_to_clients=yield_to_clients,
        )

    # -- what the manager calls ----------------------------------------------------------------

    async def flush(self) -> None:
        """Write pending progress and checkpoint now (renewing the lease); JobLost if not ours."""
        async with self._lock:
            if not self._pending:
                return
            save_checkpoint, self._checkpoint_pending, self._pending = self._checkpoint_pending, False, False
            now = self._clock()
            self._last_write = now
            self.writes += 1
            ok = await self._store.progress(
                self.job_id,
                self._holder,
                self._done,
                self._total,
                self._checkpoint,
                now + self._lease,
                save_checkpoint=save_checkpoint,
            )
        if not ok:
            self.lost = True
            raise JobLost(f"job {self.job_id} is no longer this server's to run")
