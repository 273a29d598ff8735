"""Coalesce the texts of concurrent requests into batches for the worker process(es).

Each request's texts (windows of its messages) join a queue of pending requests. One task per
worker process fills a batch of at most ``max_batch_size`` texts, taking one text from each pending
request in turn (so a short request is not stuck behind a long document), sends it as one message to
its process, and hands the scores back. A text's score does not depend on its batch, so coalescing
changes no verdict; it saves one round trip to the process per text.
"""

from __future__ import annotations

import asyncio
from collections import deque

from lamina_prompt_guard.engine import Scored, WorkerProcess


class _Request:
    __slots__ = ("future", "items", "out", "remaining")

    def __init__(self, texts: list[str], future: asyncio.Future) -> None:
        self.items = deque(enumerate(texts))
        self.out: list[Scored | None] = [None] * len(texts)
        self.remaining = len(texts)
        self.future = future


class Batcher:
    def __init__(self, workers: list[WorkerProcess], *, max_batch_size: int) -> None:
        self.workers = workers
        self.max_batch_size = max_batch_size
        self._pending: deque[_Request] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.batches_run = 0  # for tests and metrics
        self.texts_run = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(worker), name=f"prompt-guard-batcher-{i}")
            for i, worker in enumerate(self.workers)
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while self._pending:
            req = self._pending.popleft()
            if not req.future.done():
                req.future.set_exception(RuntimeError("the prompt-guard provider shut down"))

    async def score(self, texts: list[str]) -> list[Scored]:
        """The score of each text, in order."""
        if not self._tasks:
            raise RuntimeError("the prompt-guard batcher is not started")
        if not texts:
            return []
        req = _Request(texts, asyncio.get_running_loop().create_future())
        self._pending.append(req)
        self._wakeup.set()
        # A caller that goes away cancels its future; its remaining texts are dropped from later batches.
        return await req.future

    def _next_batch(self) -> list[tuple[_Request, int, str]]:
        batch: list[tuple[_Request, int, str]] = []
        while self._pending and len(batch) < self.max_batch_size:
            req = self._pending.popleft()
            if req.future.done():
                continue
            index, text = req.items.popleft()
            batch.append((req, index, text))
            if req.items:
                self._pending.append(req)
        return batch

    async def _loop(self, worker: WorkerProcess) -> None:
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._next_batch()
            if not batch:
                continue
            try:
                results = await worker.score([text for _r, _i, text in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                for req, _index, _text in batch:
                    if not req.future.done():
                        req.future.set_exception(exc)
                continue
            self.batches_run += 1
            self.texts_run += len(batch)
            for (req, index, _text), result in zip(batch, results, strict=True):
                if req.future.done():
                    continue
                req.out[index] = result
                req.remaining -= 1
                if req.remaining == 0:
                    req.future.set_result(req.out)
