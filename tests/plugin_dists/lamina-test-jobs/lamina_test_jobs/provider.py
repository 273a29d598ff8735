"""``inline::test-jobs``: registers three job kinds with the server's job manager.

- ``test.count`` (resumable): counts ``params.items`` items, ``params.delay`` seconds each, saving
  ``{"next": i}`` as its checkpoint after each item (flushed) and appending ``"<item> <pid>"`` to
  ``params.log`` when given, so a test sees which process did which item.
- ``test.once``: the same, not resumable.
- ``test.fail``: raises ``ValueError(params.message)``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import BaseModel, ConfigDict

from lamina.jobs import JobContext
from lamina.providers.base import ProviderBase, ProviderContext


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count_limit: int | None = None  # test.count's per-kind concurrency limit


async def count(ctx: JobContext) -> dict[str, Any]:
    items = int(ctx.params.get("items", 3))
    delay = float(ctx.params.get("delay", 0.0))
    log = ctx.params.get("log")
    start = (ctx.checkpoint or {}).get("next", 0)
    for i in range(start, items):
        await asyncio.sleep(delay)
        if log:
            with open(log, "a") as fh:  # noqa: ASYNC230 - one short line; the test reads it
                fh.write(f"{i} {os.getpid()}\n")
        await ctx.progress(i + 1, items, checkpoint={"next": i + 1}, flush=True)
    return {"items": items, "resumed_at": start, "attempt": ctx.attempt}


async def fail(ctx: JobContext) -> None:
    await ctx.progress(1, 2)
    raise ValueError(ctx.params.get("message", "the test job failed"))


class TestJobsProvider(ProviderBase):
    def __init__(self, config: Config, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config

    async def initialize(self) -> None:
        jobs = self.context.jobs
        assert jobs is not None, "the stack hands providers its job manager"
        jobs.register("test.count", count, resumable=True, max_concurrent=self.config.count_limit)
        jobs.register("test.once", count)
        jobs.register("test.fail", fail)


async def create_provider(config: Config, deps: dict[Any, Any], context: ProviderContext) -> TestJobsProvider:
    return TestJobsProvider(config, context)
