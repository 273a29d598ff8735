"""A job run is its own trace, linked to the request that submitted it (in-process, the SDK's in-memory
exporter; the job manager on a real SQLite jobs store)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lamina.jobs import JobContext, JobManager, JobStatus, jobs_store_config, open_jobs_store
from lamina.telemetry import TelemetrySettings, activate, deactivate, spans

WAIT = 30.0


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    activate(TelemetrySettings(tracer_provider=provider))
    yield memory
    deactivate()


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[JobManager]:
    store = await open_jobs_store(
        jobs_store_config({"type": "sqlite", "db_path": str(tmp_path / "j.db")}, tmp_path)
    )
    made = JobManager(store, poll_seconds=0.05)
    yield made
    await made.shutdown()
    await store.close()


async def handler(ctx: JobContext) -> dict[str, Any]:
    with spans.span("scoring a row"):
        if ctx.params.get("fail"):
            raise RuntimeError("the row could not be scored")
    return {"ok": True}


async def test_a_job_run_is_a_new_trace_linked_to_its_submitter(
    exporter: InMemorySpanExporter, manager: JobManager
) -> None:
    manager.register("demo.traced", handler)
    with spans.span("POST /v1/eval/benchmarks/{benchmark_id}/jobs") as request_span:
        assert request_span is not None
        job = await manager.submit("demo.traced", {"fail": False}, owner={"principal": "alice"})
    failing = await manager.submit("demo.traced", {"fail": True})  # no request around it: no link
    await manager.start()
    assert (await manager.wait(job.id, within=WAIT)).status == JobStatus.completed
    assert (await manager.wait(failing.id, within=WAIT)).status == JobStatus.failed

    finished = exporter.get_finished_spans()
    runs = sorted(
        (s for s in finished if s.name == "job demo.traced"),
        key=lambda s: s.attributes["lamina.job.id"] != job.id,
    )
    run, failed_run = runs
    submitted = request_span.get_span_context()
    assert run.parent is None and run.context.trace_id != submitted.trace_id  # a root of its own trace
    assert [(link.context.trace_id, link.context.span_id) for link in run.links] == [
        (submitted.trace_id, submitted.span_id)
    ]
    assert dict(run.attributes) == {
        "lamina.job.id": job.id,
        "lamina.job.kind": "demo.traced",
        "lamina.job.attempt": 1,
    }
    work = [s for s in finished if s.name == "scoring a row" and s.context.trace_id == run.context.trace_id]
    assert [w.parent.span_id for w in work] == [run.context.span_id]
    assert failed_run.links == () or list(failed_run.links) == []
    assert (
        failed_run.status.status_code.name == "ERROR"
        and failed_run.attributes["error.type"] == "RuntimeError"
    )
    # The submitter's own owner fields are kept beside the trace context.
    assert (await manager.get(job.id)).owner["principal"] == "alice"
