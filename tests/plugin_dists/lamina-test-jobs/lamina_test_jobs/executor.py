"""``test-counting``: the inline executor plus a record of what it ran, and its start/prepare/stop calls."""

from __future__ import annotations

from typing import Any

from lamina.jobs import JobContext, JobHandler


class CountingExecutor:
    def __init__(self, label: str) -> None:
        self.label = label
        self.runs: list[str] = []
        self.events: list[str] = []
        self.work: Any = None  # the WorkEnvironment prepare() was given

    async def start(self) -> None:
        self.events.append("start")

    async def prepare(self, work: Any) -> None:
        self.events.append("prepare")
        self.work = work

    async def run(self, handler: JobHandler, context: JobContext) -> Any:
        self.runs.append(context.job_id)
        return await handler(context)

    async def shutdown(self) -> None:
        self.events.append("shutdown")


def create_executor(config: dict[str, Any]) -> CountingExecutor:
    unknown = sorted(set(config) - {"label"})
    if unknown:
        raise ValueError(f"test-counting takes only 'label'; remove {', '.join(unknown)}")
    return CountingExecutor(str(config.get("label", "counting")))
