"""inline::meta-reference in process: what log_event does with each event type, the spans the tracer
ends reaching the store by shutdown, the answers without a trace store or a datasetio provider, and a
database that fails under the writer (requests never wait on it; writes resume when it is back)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from lamina.apis.telemetry import (
    GetSpanRequest,
    LogEventRequest,
    QueryMetricsRequest,
    QueryTracesRequest,
    SaveSpansToDatasetRequest,
)
from lamina.errors import BadRequestError, NotFoundError, ServiceUnavailableError
from lamina.providers.base import ProviderContext
from lamina.specs import Api
from lamina.telemetry import active, metrics
from lamina.testing.postgres import PostgresServer
from lamina_telemetry.config import TelemetryConfig
from lamina_telemetry.provider import TelemetryProvider
from lamina_telemetry.queries import query_metrics, query_traces
from lamina_telemetry.store import open_trace_store, trace_store_config
from lamina_telemetry.store_writer import StoreSpanProcessor, StoreWriter


def _provider(tmp_path: Path, **config: object) -> TelemetryProvider:
    context = ProviderContext(
        api=Api.telemetry,
        provider_id="meta-reference",
        provider_type="inline::meta-reference",
        state_dir=tmp_path / "state",
    )
    settings = {"sinks": "sqlite", "sqlite_db_path": str(tmp_path / "traces.db"), "prometheus": False}
    return TelemetryProvider(TelemetryConfig.model_validate({**settings, **config}), {}, context)


def _event(**fields: object) -> LogEventRequest:
    base = {"trace_id": "t" * 32, "span_id": "s" * 16, "timestamp": datetime.now(UTC).isoformat()}
    return LogEventRequest.model_validate({"event": {**base, **fields}, "ttl_seconds": 600})


async def test_log_event_types_and_spans_written_by_shutdown(tmp_path: Path) -> None:
    provider = _provider(tmp_path)
    await provider.initialize()
    try:
        settings = active()
        assert settings is not None and settings.tracer_provider is provider.tracer_provider
        await provider.log_event(_event(type="unstructured_log", message="hello", severity="warn"))
        assert provider.store is not None
        [logged] = await provider.store.events_of("t" * 32, "s" * 16)
        assert (logged["message"], logged["severity"]) == ("hello", "warn")

        start = int(time.time()) - 1
        for value in (2, 3):
            await provider.log_event(
                _event(type="metric", metric="widgets", value=value, unit="1", attributes={"kind": "a"})
            )
        answer = await provider.query_metrics(
            QueryMetricsRequest(metric_name="widgets", start_time=start, query_type="instant")
        )
        assert [(s.labels[0].value, s.values[0].value) for s in answer.data] == [("a", 5.0)]

        await provider.log_event(
            _event(type="structured_log", payload={"type": "span_start", "name": "mine"})
        )
        with pytest.raises(NotFoundError, match="no open span 'x'"):
            await provider.log_event(
                _event(span_id="x", type="structured_log", payload={"type": "span_end", "status": "ok"})
            )
        await provider.log_event(
            _event(
                type="structured_log", payload={"type": "span_end", "status": "error"}, attributes={"k": 1}
            )
        )
        mine = await provider.get_span(GetSpanRequest(trace_id="t" * 32, span_id="s" * 16))
        assert mine.name == "mine" and mine.end_time is not None and mine.attributes == {"k": 1}

        with pytest.raises(BadRequestError, match=r"dataset_id: .*no datasetio provider"):
            await provider.save_spans_to_dataset(
                SaveSpansToDatasetRequest(attribute_filters=[], attributes_to_save=["k"], dataset_id="d")
            )

        tracer = provider.tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("ended-just-before-shutdown") as span:
            pass
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert len(provider.span_pipe._queue) == 1  # queued for the export worker (it takes them each second)
    finally:
        await provider.shutdown()
    assert active() is None

    # The span the tracer ended last was on the export worker's queue: shutdown had the worker write it.
    store = await open_trace_store(
        trace_store_config({"type": "sqlite", "db_path": str(tmp_path / "traces.db")}, tmp_path)
    )
    try:
        assert trace_id in {t.trace_id for t in await query_traces(store, None, 10, 0, None)}
    finally:
        await store.close()


async def test_the_last_metric_deltas_are_written_at_shutdown(tmp_path: Path) -> None:
    provider = _provider(tmp_path)
    await provider.initialize()
    start = int(time.time()) - 1
    try:
        metrics.record_inference(
            model="m1",
            provider_id="fake",
            operation="chat",
            stream=False,
            input_tokens=11,
            output_tokens=4,
            seconds=0.01,
            ttft_seconds=None,
        )
    finally:
        await provider.shutdown()  # no collection ran before: the reader's interval is 10 s

    store = await open_trace_store(
        trace_store_config({"type": "sqlite", "db_path": str(tmp_path / "traces.db")}, tmp_path)
    )
    try:
        for name, value in (("prompt_tokens", 11.0), ("completion_tokens", 4.0), ("total_tokens", 15.0)):
            request = QueryMetricsRequest(metric_name=name, start_time=start, query_type="instant")
            [series] = await query_metrics(store, request)
            assert {lab.name: lab.value for lab in series.labels} == {"model_id": "m1", "provider_id": "fake"}
            assert series.values[0].value == value
    finally:
        await store.close()


async def test_without_the_sqlite_sink_the_api_says_how_to_turn_the_store_on(tmp_path: Path) -> None:
    provider = _provider(tmp_path, sinks=[])
    await provider.initialize()
    try:
        with pytest.raises(ServiceUnavailableError, match="add sqlite to its sinks"):
            await provider.query_traces(QueryTracesRequest())
    finally:
        await provider.shutdown()


async def _within(seconds: float, check: Callable[[], bool]) -> bool:
    """Whether ``check`` turns true within ``seconds`` (a bound that proves "does not hang")."""
    for _ in range(int(seconds / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


async def test_a_failing_database_never_blocks_and_writes_resume(tmp_path: Path) -> None:
    store = await open_trace_store(
        trace_store_config({"type": "sqlite", "db_path": str(tmp_path / f"{uuid.uuid4().hex}.db")}, tmp_path)
    )
    writer = StoreWriter(store, ttl_seconds=600, interval=0.05)
    await writer.start()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(StoreSpanProcessor(writer))
    tracer = tracer_provider.get_tracer("test")
    try:
        await store.close()  # the database goes away under the writer
        with tracer.start_as_current_span("lost"):
            pass
        assert await _within(20, lambda: writer.last_error is not None)
        assert "not open" in str(writer.last_error)

        await store.initialize()  # back
        with tracer.start_as_current_span("kept"):
            pass
        assert await _within(20, lambda: writer.last_error is None)
        traces = await query_traces(store, None, 10, 0, None)
        assert len(traces) == 1
    finally:
        await writer.close()
        await store.close()


@pytest.mark.postgres
async def test_trace_store_on_postgresql_from_the_config(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    table = f"tel_{uuid.uuid4().hex[:12]}"
    provider = _provider(tmp_path, trace_store=postgres_server.kvstore_config(table_name=table))
    await provider.initialize()
    try:
        assert provider.store is not None and provider.store.where.startswith("postgres trace store")
        await provider.log_event(_event(type="structured_log", payload={"type": "span_start", "name": "pg"}))
        await provider.log_event(_event(type="structured_log", payload={"type": "span_end", "status": "ok"}))
        tracer = provider.tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("server-span", attributes={"gen_ai.request.model": "m"}):
            pass
        found = await provider.query_traces(
            QueryTracesRequest(attribute_filters=[{"key": "gen_ai.request.model", "op": "eq", "value": "m"}])
        )
        assert len(found.data) == 1
        assert (await provider.get_span(GetSpanRequest(trace_id="t" * 32, span_id="s" * 16))).name == "pg"
    finally:
        await provider.shutdown()
