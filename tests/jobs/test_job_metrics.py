"""The lamina.jobs gauge: the job manager counts jobs by state in the store (at most once per poll, only
while metrics are on) and every collection reads that count from memory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NoOpTracerProvider

from lamina.jobs import JobContext, JobManager
from lamina.telemetry import TelemetrySettings, activate, deactivate
from lamina_telemetry.metrics_setup import LaminaMeterProvider

WAIT = 30.0


@pytest.fixture
def reader():
    reader = InMemoryMetricReader()
    provider = LaminaMeterProvider(metric_readers=[reader])
    activate(TelemetrySettings(tracer_provider=NoOpTracerProvider(), meter_provider=provider))
    yield reader
    deactivate()
    provider.shutdown()


def jobs_gauge(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "lamina.jobs":
                    return {p.attributes["lamina.job.state"]: p.value for p in metric.data.data_points}
    return {}


class CountingQueries:
    """Counts the manager's count_by_status queries."""

    def __init__(self, manager: JobManager) -> None:
        self.calls = 0
        original = manager.store.count_by_status

        async def counted() -> dict[str, int]:
            self.calls += 1
            return await original()

        manager.store.count_by_status = counted  # type: ignore[method-assign]


async def test_jobs_by_state_are_reported_from_the_store(managers, reader) -> None:
    manager: JobManager = await managers(max_concurrent=1)
    release = asyncio.Event()

    async def held(ctx: JobContext) -> dict[str, Any]:
        await release.wait()
        return {}

    async def broken(ctx: JobContext) -> None:
        raise RuntimeError("no")

    manager.register("demo.held", held)
    manager.register("demo.broken", broken)
    failed = await manager.submit("demo.broken")
    await manager.start()
    await manager.wait(failed.id, within=WAIT)
    for _ in range(3):
        await manager.submit("demo.held")

    async def until(expected: dict[str, int]) -> None:
        while True:
            got = jobs_gauge(reader)
            if all(got.get(k) == v for k, v in expected.items()):
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(until({"failed": 1, "in_progress": 1, "scheduled": 2, "completed": 0}), WAIT)
    release.set()
    await asyncio.wait_for(until({"failed": 1, "in_progress": 0, "scheduled": 0, "completed": 3}), WAIT)


async def test_a_scrape_storm_is_no_query_storm(managers, reader) -> None:
    manager: JobManager = await managers(poll_seconds=60.0)
    queries = CountingQueries(manager)
    await manager.start()
    for _ in range(200):
        jobs_gauge(reader)
    await asyncio.sleep(0.2)
    assert queries.calls <= 1  # the scheduler's own count at start, not one per collection


async def test_with_telemetry_off_the_manager_never_counts(managers) -> None:
    deactivate()
    manager: JobManager = await managers(poll_seconds=0.05)
    queries = CountingQueries(manager)
    manager.register("demo.noop", _noop)
    await manager.start()
    job = await manager.submit("demo.noop")
    await manager.wait(job.id, within=WAIT)
    await asyncio.sleep(0.3)  # several polls
    assert queries.calls == 0


async def _noop(ctx: JobContext) -> None:
    return None
