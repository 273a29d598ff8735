"""Coalesce the token sequences of concurrent requests into model batches, run off the event loop.

``lamina.providers.batching.RoundRobinBatcher`` does the coalescing (one sequence from each pending
request in turn) and ``ThreadedBatcher`` runs each batch on one of its threads (one loop wake-up
each way: no worker task in between), and a request's sequences
are queued shortest first, so a request alone gets batches of similar lengths (little padding).
Since a vector does not depend on its batch, coalescing changes no result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lamina.providers.batching import ThreadedBatcher

RunBatch = Callable[[Sequence[np.ndarray]], np.ndarray]


class Batcher(ThreadedBatcher[np.ndarray, np.ndarray]):
    def __init__(self, run: RunBatch, *, dimension: int, max_batch_size: int, workers: int = 1) -> None:
        super().__init__(
            self._run_model, max_batch_size=max_batch_size, workers=workers, name="onnx-embed", sort_key=len
        )
        self._model = run
        self._dimension = dimension

    async def close(self, reason: str = "the embeddings provider shut down") -> None:
        await super().close(reason)

    def _run_model(self, worker: int, seqs: list[np.ndarray]) -> np.ndarray:
        return self._model(seqs)

    async def embed(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        """Unit vectors [len(seqs), dimension], in the order of ``seqs``."""
        if not seqs:
            return np.empty((0, self._dimension), dtype=np.float32)
        return np.stack(await self.submit(seqs)).astype(np.float32, copy=False)
