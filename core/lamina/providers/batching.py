"""Coalesce the items of concurrent requests into batches for a model (cross-request batching).

Every request's items join a queue of pending requests. ``workers`` tasks each fill a batch of at
most ``max_batch_size`` items, taking one item from each pending request in turn (so a small request
is not stuck behind a large one), and hand it to ``run(worker_index, items)``, which returns one
result per item (run the model off the event loop there: an executor, a worker process). Results go
back to each request in its items' order. Use it only where an item's result does not depend on
its batch: then coalescing changes no answer.

A caller that goes away (client disconnect) cancels its future: what is left of its items is dropped
from later batches. A batch that fails (``run`` raises, is cancelled, or returns a wrong number of
results) fails every request with an item in it, and the worker goes on. ``close`` fails every
request still waiting, those in a running batch included.

``DirectBatcher`` is the same coalescing with no worker tasks, for a model that runs elsewhere and
reports back by callback: a request that finds a worker idle is handed to it from ``submit`` itself,
and the callback that delivers a batch's results also hands the worker its next batch. That is one
loop wake-up each way instead of a worker task's turns. ``ThreadedBatcher`` is a ``DirectBatcher``
on threads (a synchronous model call that releases the GIL); a worker process with non-blocking
pipes is another (plugins/prompt-guard).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Request(Generic[T, R]):
    __slots__ = ("future", "items", "out", "remaining")

    def __init__(self, items: Sequence[T], order: list[int], future: asyncio.Future) -> None:
        self.items = deque((i, items[i]) for i in order)
        self.out: list[R | None] = [None] * len(items)
        self.remaining = len(items)
        self.future = future


class RoundRobinBatcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[int, list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch_size: int,
        workers: int = 1,
        name: str = "batcher",
        sort_key: Callable[[T], Any] | None = None,
    ) -> None:
        """``sort_key``: queue each request's items in this order (e.g. by length, so a request
        alone gets batches of similar items); results still come back in the request's order."""
        self._run = run
        self.max_batch_size = max_batch_size
        self.workers = workers
        self.name = name
        self._sort_key = sort_key
        self._pending: deque[_Request[T, R]] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._in_flight: dict[int, list[_Request[T, R]]] = {}  # worker -> requests in its running batch
        self.batches_run = 0  # for tests and metrics
        self.items_run = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(i), name=f"{self.name}-{i}") for i in range(self.workers)
        ]

    async def close(self, reason: str = "the provider shut down") -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._fail_stranded(reason)

    async def submit(self, items: Sequence[T]) -> list[R]:
        """One result per item, in the order of ``items``."""
        if not self._tasks:
            raise RuntimeError(f"{self.name} is not started")
        if not items:
            return []
        req = self._enqueue(items)
        self._wakeup.set()
        return await req.future

    def _enqueue(self, items: Sequence[T]) -> _Request[T, R]:
        """Queue a request, its items in ``sort_key`` order (results still come back in its order)."""
        order = list(range(len(items)))
        if self._sort_key is not None:
            key = self._sort_key
            order.sort(key=lambda i: key(items[i]))
        req: _Request[T, R] = _Request(items, order, asyncio.get_running_loop().create_future())
        self._pending.append(req)
        return req

    def _fail_stranded(self, reason: str) -> None:
        """Fail every request still waiting or in a running batch (on close)."""
        stranded = [req for reqs in self._in_flight.values() for req in reqs]
        self._in_flight.clear()
        while self._pending:
            stranded.append(self._pending.popleft())
        for req in stranded:
            if not req.future.done():
                req.future.set_exception(RuntimeError(reason))

    def _next_batch(self) -> list[tuple[_Request[T, R], int, T]]:
        batch: list[tuple[_Request[T, R], int, T]] = []
        while self._pending and len(batch) < self.max_batch_size:
            req = self._pending.popleft()
            if req.future.done():  # cancelled or failed: drop what is left of it
                continue
            index, item = req.items.popleft()
            batch.append((req, index, item))
            if req.items:
                self._pending.append(req)
        return batch

    async def _worker(self, worker: int) -> None:
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._next_batch()
            if not batch:
                continue
            self._in_flight[worker] = [req for req, _i, _item in batch]
            try:
                results = list(await self._run(worker, [item for _r, _i, item in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.name}: {len(results)} results for a batch of {len(batch)}")
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # close(): the batcher is stopping, and fails what _in_flight holds
                self._in_flight.pop(worker, None)
                self._fail(batch, RuntimeError(f"{self.name}: the batch was cancelled"))
                continue
            except Exception as exc:
                self._in_flight.pop(worker, None)
                self._fail(batch, exc)
                continue
            self._in_flight.pop(worker, None)
            self._deliver(batch, results)

    def _deliver(self, batch: list[tuple[_Request[T, R], int, T]], results: Sequence[R]) -> None:
        """Hand a finished batch's results to their requests; a request whose items are all done
        gets its answer."""
        self.batches_run += 1
        self.items_run += len(batch)
        for (req, index, _item), result in zip(batch, results, strict=True):
            if req.future.done():
                continue
            req.out[index] = result
            req.remaining -= 1
            if req.remaining == 0:
                req.future.set_result(req.out)

    @staticmethod
    def _fail(batch: list[tuple[_Request[T, R], int, T]], exc: BaseException) -> None:
        for req, _index, _item in batch:
            if not req.future.done():
                req.future.set_exception(exc)


Done = Callable[[Sequence[Any] | None, BaseException | None], None]


class DirectBatcher(RoundRobinBatcher[T, R]):
    """``RoundRobinBatcher``'s contract without worker tasks, for a model that runs elsewhere (threads,
    a process) and reports back by callback. ``begin(worker, items, done)`` starts a batch on an idle
    worker and returns at once; the model calls ``done(results, None)`` or ``done(None, error)`` on the
    event loop when the batch ends. A request that finds a worker idle is handed to it from ``submit``
    itself, and ``done`` hands the worker its next batch: no loop turn on either side.

    A running batch cannot be interrupted: ``close`` fails its requests at once and its results are
    dropped when they arrive."""

    def __init__(
        self,
        begin: Callable[[int, list[T], Done], None],
        *,
        max_batch_size: int,
        workers: int = 1,
        name: str = "batcher",
        sort_key: Callable[[T], Any] | None = None,
    ) -> None:
        super().__init__(
            self._no_task, max_batch_size=max_batch_size, workers=workers, name=name, sort_key=sort_key
        )
        self._begin = begin
        self._open = False
        self._idle: list[int] = []

    async def _no_task(self, worker: int, items: list[T]) -> Sequence[R]:  # pragma: no cover
        raise AssertionError("a DirectBatcher runs no worker tasks")

    def start(self) -> None:
        self._open = True
        self._idle = list(reversed(range(self.workers)))

    async def close(self, reason: str = "the provider shut down") -> None:
        self._open = False
        self._idle = []
        self._fail_stranded(reason)

    async def submit(self, items: Sequence[T]) -> list[R]:
        """One result per item, in the order of ``items``."""
        if not self._open:
            raise RuntimeError(f"{self.name} is not started")
        if not items:
            return []
        req = self._enqueue(items)
        if self._idle:
            self._dispatch()
        return await req.future

    def _dispatch(self) -> None:
        """Hand batches to idle workers while requests wait (on the loop)."""
        while self._idle and self._pending and self._open:
            batch = self._next_batch()
            if not batch:
                return
            worker = self._idle.pop()
            self._in_flight[worker] = [req for req, _i, _item in batch]

            def done(
                results: Sequence[R] | None, error: BaseException | None, worker=worker, batch=batch
            ) -> None:
                self._finish(worker, batch, results, error)

            try:
                self._begin(worker, [item for _r, _i, item in batch], done)
            except Exception as exc:  # could not even start: this batch fails, the worker is free again
                self._finish(worker, batch, None, exc)

    def _finish(
        self,
        worker: int,
        batch: list[tuple[_Request[T, R], int, T]],
        results: Sequence[R] | None,
        error: BaseException | None,
    ) -> None:
        if not self._open:
            return  # closed meanwhile: close() failed the batch's requests
        self._in_flight.pop(worker, None)
        self._idle.append(worker)
        if error is None and results is not None and len(results) != len(batch):
            error = RuntimeError(f"{self.name}: {len(results)} results for a batch of {len(batch)}")
        if error is not None or results is None:
            self._fail(batch, error or RuntimeError(f"{self.name}: the batch returned nothing"))
        else:
            self._deliver(batch, results)
        self._dispatch()


class ThreadedBatcher(DirectBatcher[T, R]):
    """``DirectBatcher`` for ``run(worker_index, items) -> results`` run on one of ``workers`` threads
    (a synchronous model call that releases the GIL, e.g. ONNX Runtime); each thread delivers a
    batch's results with one ``call_soon_threadsafe``."""

    def __init__(
        self,
        run: Callable[[int, list[T]], Sequence[R]],
        *,
        max_batch_size: int,
        workers: int = 1,
        name: str = "batcher",
        sort_key: Callable[[T], Any] | None = None,
    ) -> None:
        super().__init__(
            self._put, max_batch_size=max_batch_size, workers=workers, name=name, sort_key=sort_key
        )
        self._run_sync = run
        self._inboxes: list[queue.SimpleQueue] = []  # one per thread: its next batch, or None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Own threads, each with a SimpleQueue (put is one C call), not a ThreadPoolExecutor: its
        # submit's Python-level bookkeeping (work item, idle semaphore) ran on the event loop, in the
        # GIL contention of the thread it had just woken (~0.2 ms per batch under a profiler).
        self._inboxes = [queue.SimpleQueue() for _ in range(self.workers)]
        for worker, inbox in enumerate(self._inboxes):
            threading.Thread(
                target=self._thread_main, args=(worker, inbox), name=f"{self.name}-{worker}", daemon=True
            ).start()
        super().start()

    async def close(self, reason: str = "the provider shut down") -> None:
        await super().close(reason)
        inboxes, self._inboxes = self._inboxes, []
        for inbox in inboxes:
            inbox.put(None)  # the thread ends after its running batch, whose results are dropped

    def _put(self, worker: int, items: list[T], done: Done) -> None:
        self._inboxes[worker].put((items, done))

    def _thread_main(self, worker: int, inbox: queue.SimpleQueue) -> None:
        while (job := inbox.get()) is not None:
            items, done = job
            results: Sequence[R] | None = None
            error: BaseException | None = None
            try:
                results = self._run_sync(worker, items)
            except BaseException as exc:  # a native panic may be a BaseException: it fails the batch only
                error = exc
            try:
                self._loop.call_soon_threadsafe(done, results, error)  # type: ignore[union-attr]
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more
