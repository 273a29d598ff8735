"""Coalesce the token sequences of concurrent requests into model batches, run off the event loop.

``lamina.providers.batching.RoundRobinBatcher`` does the coalescing (one sequence from each pending
request in turn); here each batch runs on a thread of a bounded executor, and a request's sequences
are queued shortest first, so a request alone gets batches of similar lengths (little padding).
Since a vector does not depend on its batch, coalescing changes no result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lamina.providers.batching import RoundRobinBatcher

RunBatch = Callable[[Sequence[np.ndarray]], np.ndarray]


class Batcher(RoundRobinBatcher[np.ndarray, np.ndarray]):
    def __init__(self, run: RunBatch, *, dimension: int, max_batch_size: int, workers: int = 1) -> None:
        super().__init__(
            self._in_executor, max_batch_size=max_batch_size, workers=workers, name="onnx-embed", sort_key=len
        )
        self._model = run
        self._dimension = dimension
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="onnx-embed")
        super().start()

    async def close(self, reason: str = "the embeddings provider shut down") -> None:
        await super().close(reason)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _in_executor(self, worker: int, seqs: list[np.ndarray]) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._model, seqs)

    async def embed(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        """Unit vectors [len(seqs), dimension], in the order of ``seqs``."""
        if not seqs:
            return np.empty((0, self._dimension), dtype=np.float32)
        return np.stack(await self.submit(seqs)).astype(np.float32, copy=False)
