"""Work items (lamina.jobs.work): a job's handler hands items to ``context.map`` and the executor runs the
work function on them (here the inline executor, in this event loop, on the routers it was given)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from lamina.jobs import JobContext, JobStatus, WorkApis, WorkEnvironment, work_function
from lamina.jobs.work import inline_map
from lamina.specs import Api


class Doubler:
    """Stands for a router: the work functions below call it through ``apis``."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.in_flight = 0
        self.peak = 0

    async def double(self, value: int) -> int:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.001 * (value % 3))
            self.calls.append(value)
            return value * 2
        finally:
            self.in_flight -= 1


async def double_item(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    """A work function: uses the inference "router" of wherever it runs."""
    if item["value"] < 0:
        raise ValueError(f"negative value {item['value']}")
    return {"doubled": await apis[Api.inference].double(item["value"])}


async def needs_safety(apis: Mapping[Api, Any], item: dict[str, Any]) -> Any:
    return apis[Api.safety]


HERE = __name__


def env(router: Any) -> WorkEnvironment:
    return WorkEnvironment(WorkApis({Api.inference: router, Api.safety: object()}, {Api.inference}))


async def test_inline_map_runs_every_item_within_the_concurrency_and_reports_each_result() -> None:
    router = Doubler()
    seen: dict[int, Any] = {}

    async def on_result(index: int, result: Any) -> None:
        seen[index] = result

    items = [{"value": v} for v in range(50)]
    await inline_map(f"{HERE}:double_item", items, work=env(router), concurrency=4, on_result=on_result)
    assert seen == {i: {"doubled": 2 * i} for i in range(50)}
    assert sorted(router.calls) == list(range(50))
    assert 1 < router.peak <= 4


async def test_a_raising_item_stops_the_map_and_its_exception_is_raised() -> None:
    router = Doubler()
    items = [{"value": v} for v in (1, 2, -3, *range(4, 100))]
    with pytest.raises(ValueError, match="negative value -3"):
        await inline_map(f"{HERE}:double_item", items, work=env(router), concurrency=2)
    assert len(router.calls) < 10  # items not started never start


async def test_an_unserved_api_names_what_the_stack_serves() -> None:
    with pytest.raises(KeyError, match=r"safety API is not served by this stack \(it serves: inference\)"):
        await inline_map(f"{HERE}:needs_safety", [{}], work=env(Doubler()), concurrency=1)
    assert list(env(Doubler()).apis) == [Api.inference]


def test_a_work_function_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("work function 'nowhere.at_all:fn' cannot be imported")):
        work_function("nowhere.at_all:fn")
    with pytest.raises(ValueError, match=re.escape("must look like 'package.module:attr'")):
        work_function("no_colon")


async def test_a_jobs_handler_maps_items_on_its_managers_executor(managers: Callable[..., Any]) -> None:
    router = Doubler()
    manager = await managers(work=env(router))
    stored: list[int] = []

    async def handler(ctx: JobContext) -> dict[str, Any]:
        async def on_result(index: int, result: Any) -> None:
            stored.append(result["doubled"])
            await ctx.progress(len(stored), len(items))

        items = [{"value": v} for v in ctx.params["values"]]
        await ctx.map(f"{HERE}:double_item", items, concurrency=3, on_result=on_result)
        return {"sum": sum(stored)}

    manager.register("doubling", handler)
    await manager.start()
    job = await manager.submit("doubling", {"values": list(range(20))})
    job = await manager.wait(job.id, within=30)
    assert job.status == JobStatus.completed, job.error
    assert job.result == {"sum": 2 * sum(range(20))}
    assert job.progress.done == job.progress.total == 20
