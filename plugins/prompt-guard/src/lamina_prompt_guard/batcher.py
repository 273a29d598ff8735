"""Coalesce the texts of concurrent requests into batches for the worker process(es).

``lamina.providers.batching.RoundRobinBatcher`` does the coalescing (one text from each pending
request in turn, so a short request is not stuck behind a long document); each batch goes as one
message to a worker process. A text's score does not depend on its batch, so coalescing changes no
verdict; it saves one round trip to the process per text.
"""

from __future__ import annotations

from lamina.providers.batching import RoundRobinBatcher
from lamina_prompt_guard.engine import Scored, WorkerProcess


class Batcher(RoundRobinBatcher[str, Scored]):
    def __init__(self, workers: list[WorkerProcess], *, max_batch_size: int) -> None:
        super().__init__(
            self._score, max_batch_size=max_batch_size, workers=len(workers), name="prompt-guard"
        )
        self.processes = workers

    async def _score(self, worker: int, texts: list[str]) -> list[Scored]:
        return await self.processes[worker].score(texts)

    async def close(self, reason: str = "the prompt-guard provider shut down") -> None:
        await super().close(reason)

    async def score(self, texts: list[str]) -> list[Scored]:
        """The score of each text, in order."""
        return await self.submit(texts)
