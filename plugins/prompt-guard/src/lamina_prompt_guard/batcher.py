"""Coalesce the texts of concurrent requests into batches for the worker process(es).

``lamina.providers.batching.DirectBatcher`` does the coalescing (one text from each pending request
in turn, so a short request is not stuck behind a long document) and hands each batch straight to
an idle worker process as one message (``WorkerProcess.begin``), whose answer comes back by callback.
A text's score does not depend on its batch, so coalescing changes no verdict; it saves one round
trip to the process per text.
"""

from __future__ import annotations

from lamina.providers.batching import DirectBatcher
from lamina_prompt_guard.worker_process import Scored, WorkerProcess


class Batcher(DirectBatcher[str, Scored]):
    def __init__(self, workers: list[WorkerProcess], *, max_batch_size: int) -> None:
        super().__init__(
            lambda worker, texts, done: workers[worker].begin(texts, done),
            max_batch_size=max_batch_size,
            workers=len(workers),
            name="prompt-guard",
        )
        self.processes = workers

    async def close(self, reason: str = "the prompt-guard provider shut down") -> None:
        await super().close(reason)

    async def score(self, texts: list[str]) -> list[Scored]:
        """The score of each text, in order."""
        return await self.submit(texts)
