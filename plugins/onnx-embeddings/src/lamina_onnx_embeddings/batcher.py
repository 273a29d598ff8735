"""Coalesce the texts of concurrent requests into model batches, run off the event loop.

Every request's token sequences join a queue of pending requests. ``workers`` tasks each fill a
batch of at most ``max_batch_size`` sequences, taking one sequence from each pending request in
turn (so a small request is not stuck behind a large one), and run it on their own thread of a
bounded executor. A request's sequences are queued shortest first, so a request alone gets batches
of similar lengths (little padding). Since a vector does not depend on its batch, coalescing changes
no result.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

RunBatch = Callable[[Sequence[np.ndarray]], np.ndarray]


class _Request:
    __slots__ = ("future", "items", "out", "remaining")

    def __init__(self, seqs: Sequence[np.ndarray], dimension: int, future: asyncio.Future) -> None:
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        self.items = deque((i, seqs[i]) for i in order)
        self.out = np.empty((len(seqs), dimension), dtype=np.float32)
        self.remaining = len(seqs)
        self.future = future


class Batcher:
    def __init__(self, run: RunBatch, *, dimension: int, max_batch_size: int, workers: int = 1) -> None:
        self._run = run
        self._dimension = dimension
        self.max_batch_size = max_batch_size
        self.workers = workers
        self._pending: deque[_Request] = deque()
        self._wakeup = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task] = []
        self.batches_run = 0  # for tests and metrics

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="onnx-embed")
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"onnx-embed-{i}") for i in range(self.workers)
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while self._pending:
            req = self._pending.popleft()
            if not req.future.done():
                req.future.set_exception(RuntimeError("the embeddings provider shut down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def embed(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        """Unit vectors [len(seqs), dimension], in the order of ``seqs``."""
        if not self._tasks:
            raise RuntimeError("the embeddings batcher is not started")
        if not seqs:
            return np.empty((0, self._dimension), dtype=np.float32)
        req = _Request(seqs, self._dimension, asyncio.get_running_loop().create_future())
        self._pending.append(req)
        self._wakeup.set()
        # If the caller goes away (client disconnect), the future is cancelled and its
        # remaining sequences are dropped from later batches.
        return await req.future

    def _next_batch(self) -> list[tuple[_Request, int, np.ndarray]]:
        batch: list[tuple[_Request, int, np.ndarray]] = []
        while self._pending and len(batch) < self.max_batch_size:
            req = self._pending.popleft()
            if req.future.done():  # cancelled or failed: drop what is left of it
                continue
            index, seq = req.items.popleft()
            batch.append((req, index, seq))
            if req.items:
                self._pending.append(req)
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._next_batch()
            if not batch:
                continue
            try:
                vectors = await loop.run_in_executor(
                    self._executor, self._run, [seq for _r, _i, seq in batch]
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                for req, _index, _seq in batch:
                    if not req.future.done():
                        req.future.set_exception(exc)
                continue
            self.batches_run += 1
            for (req, index, _seq), vector in zip(batch, vectors, strict=True):
                if req.future.done():
                    continue
                req.out[index] = vector
                req.remaining -= 1
                if req.remaining == 0:
                    req.future.set_result(req.out)
