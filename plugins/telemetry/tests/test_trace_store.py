"""The trace store on SQLite and on a real PostgreSQL: spans from a real OpenTelemetry SDK tracer through
StoreSpanProcessor, the queries of Llama Stack's telemetry API, metric points from a real meter provider,
the bounded queue and the ttl pruning."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from lamina.apis.telemetry import (
    MetricLabelMatcher,
    MetricQueryType,
    QueryCondition,
    QueryMetricsRequest,
)
from lamina.errors import BadRequestError, NotFoundError
from lamina.request_context import TRACES_OF
from lamina.testing.postgres import PostgresServer
from lamina_telemetry import queries
from lamina_telemetry.store import TraceStore, open_trace_store, trace_store_config
from lamina_telemetry.store_writer import StoreMetricExporter, StoreSpanProcessor, StoreWriter


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_section(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    if request.param == "sqlite":
        return {"type": "sqlite", "db_path": str(tmp_path / "trace_store.db")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.kvstore_config(table_name=f"tel_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def store(store_section: dict, tmp_path: Path) -> AsyncIterator[TraceStore]:
    opened = await open_trace_store(trace_store_config(store_section, tmp_path / "default.db"))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def writer(store: TraceStore) -> AsyncIterator[StoreWriter]:
    w = StoreWriter(store, ttl_seconds=3600)
    yield w
    await w.close()


def _tracer(writer: StoreWriter) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(StoreSpanProcessor(writer))
    return provider.get_tracer("test")


def _ids(span: trace.Span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _record_request(tracer: trace.Tracer, model: str, tokens: int, *, fail: bool = False) -> dict[str, str]:
    """A request's spans: HTTP root -> inference -> provider call, as the server's tracing makes them."""
    with tracer.start_as_current_span(
        "POST /v1/chat/completions", attributes={"http.route": "/v1/chat"}
    ) as root:
        with tracer.start_as_current_span(
            "chat " + model,
            attributes={
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": tokens,
                "session_id": model,
            },
        ) as inference:
            with tracer.start_as_current_span("provider", attributes={"lamina.provider.id": "p1"}) as call:
                if fail:
                    call.set_status(Status(StatusCode.ERROR))
    trace_id, root_id = _ids(root)
    return {"trace": trace_id, "root": root_id, "inference": _ids(inference)[1], "call": _ids(call)[1]}


async def test_a_requests_spans_answer_every_trace_query(store: TraceStore, writer: StoreWriter) -> None:
    tracer = _tracer(writer)
    a = _record_request(tracer, "model-a", 5)
    await asyncio.sleep(0.002)  # the second trace starts strictly later
    b = _record_request(tracer, "model-b", 50, fail=True)
    await writer.flush()

    newest_first = await queries.query_traces(store, None, 100, 0, None)
    assert [t.trace_id for t in newest_first] == [b["trace"], a["trace"]]
    assert newest_first[1].root_span_id == a["root"]
    oldest_first = await queries.query_traces(store, None, 100, 0, ["start_time"])
    assert [t.trace_id for t in oldest_first] == [a["trace"], b["trace"]]
    paged = await queries.query_traces(store, None, 1, 1, ["-start_time"])
    assert [t.trace_id for t in paged] == [a["trace"]]

    # A trace matches when one of its spans (not only the root) satisfies every condition.
    def cond(key: str, op: str, value: object) -> QueryCondition:
        return QueryCondition(key=key, op=op, value=value)

    eq = await queries.query_traces(store, [cond("gen_ai.request.model", "eq", "model-a")], 100, 0, None)
    assert [t.trace_id for t in eq] == [a["trace"]]
    ne = await queries.query_traces(store, [cond("gen_ai.request.model", "ne", "model-a")], 100, 0, None)
    assert [t.trace_id for t in ne] == [b["trace"]]
    gt = await queries.query_traces(store, [cond("gen_ai.usage.input_tokens", "gt", 10)], 100, 0, None)
    assert [t.trace_id for t in gt] == [b["trace"]]
    lt = await queries.query_traces(store, [cond("gen_ai.usage.input_tokens", "lt", 10)], 100, 0, None)
    assert [t.trace_id for t in lt] == [a["trace"]]
    both = [cond("gen_ai.usage.input_tokens", "gt", 1), cond("gen_ai.request.model", "eq", "model-b")]
    assert [t.trace_id for t in await queries.query_traces(store, both, 100, 0, None)] == [b["trace"]]
    assert await queries.query_traces(store, [cond("no.such", "eq", "x")], 100, 0, None) == []

    with pytest.raises(BadRequestError, match="order_by: 'duration' is not a trace field"):
        await queries.query_traces(store, None, 10, 0, ["duration"])
    with pytest.raises(BadRequestError, match=r"attribute_filters\[0\].value"):
        await queries.query_traces(store, [cond("k", "eq", {"a": 1})], 10, 0, None)

    got = await queries.get_trace(store, a["trace"])
    assert got.root_span_id == a["root"] and got.end_time is not None and got.end_time >= got.start_time
    with pytest.raises(NotFoundError, match="trace '0123' is not in the trace store"):
        await queries.get_trace(store, "0123")

    span = await queries.get_span(store, a["trace"], a["inference"])
    assert span.parent_span_id == a["root"]
    assert span.attributes == {
        "gen_ai.request.model": "model-a",
        "gen_ai.usage.input_tokens": 5,
        "session_id": "model-a",
    }
    with pytest.raises(NotFoundError, match="span 'ffff'"):
        await queries.get_span(store, a["trace"], "ffff")

    tree = await queries.get_span_tree(store, b["root"], None, None)
    assert list(tree) == [b["root"], b["inference"], b["call"]]
    assert tree[b["call"]].status == "error" and tree[b["root"]].status == "ok"
    shallow = await queries.get_span_tree(store, b["root"], ["gen_ai.request.model"], 2)
    assert list(shallow) == [b["root"], b["inference"]]
    assert shallow[b["inference"]].attributes == {"gen_ai.request.model": "model-b"}
    assert shallow[b["root"]].attributes == {}
    everything = await queries.get_span_tree(store, b["root"], [], 1)  # [] is every attribute, as None
    assert everything[b["root"]].attributes == {"http.route": "/v1/chat"}
    with pytest.raises(NotFoundError, match="span 'abcd'"):
        await queries.get_span_tree(store, "abcd", None, None)

    # query_spans: the spans of matching traces that carry every attribute asked for, only those.
    spans = await queries.query_spans(
        store, [cond("session_id", "eq", "model-a")], ["lamina.provider.id"], None
    )
    assert [(s.span_id, s.attributes) for s in spans] == [(a["call"], {"lamina.provider.id": "p1"})]
    assert (
        await queries.query_spans(store, [cond("session_id", "eq", "model-a")], ["lamina.provider.id"], 2)
        == []
    )
    every = await queries.query_spans(store, [], ["gen_ai.request.model"], None)
    assert {s.span_id for s in every} == {a["inference"], b["inference"]}


async def test_a_caller_limited_to_its_own_traces_sees_nothing_of_anothers(
    store: TraceStore, writer: StoreWriter
) -> None:
    """TRACES_OF (set by access control for a caller that may not read every trace): each query answers
    with the traces having a span whose enduser.id is the caller's; another's trace, span or tree is a
    404, as a missing one."""
    tracer = _tracer(writer)
    recorded = {}
    for who in ("alice", "bob"):
        with tracer.start_as_current_span("POST /v1/chat", attributes={"enduser.id": who}) as root:
            with tracer.start_as_current_span("chat m", attributes={"gen_ai.request.model": "m"}) as child:
                pass
        recorded[who] = (_ids(root)[0], _ids(root)[1], _ids(child)[1])
        await asyncio.sleep(0.002)
    await writer.flush()
    (a_trace, a_root, a_child), (b_trace, b_root, b_child) = recorded["alice"], recorded["bob"]
    model = [QueryCondition(key="gen_ai.request.model", op="eq", value="m")]
    assert {t.trace_id for t in await queries.query_traces(store, None, 10, 0, None)} == {a_trace, b_trace}
    token = TRACES_OF.set("alice")
    try:
        assert [t.trace_id for t in await queries.query_traces(store, None, 10, 0, None)] == [a_trace]
        assert [t.trace_id for t in await queries.query_traces(store, model, 10, 0, None)] == [a_trace]
        assert (await queries.get_trace(store, a_trace)).root_span_id == a_root
        assert (await queries.get_span(store, a_trace, a_child)).name == "chat m"
        assert list(await queries.get_span_tree(store, a_root, None, None)) == [a_root, a_child]
        spans = await queries.query_spans(store, model, ["gen_ai.request.model"], None)
        assert [s.span_id for s in spans] == [a_child]
        with pytest.raises(NotFoundError, match=f"trace '{b_trace}' is not in the trace store"):
            await queries.get_trace(store, b_trace)
        with pytest.raises(NotFoundError, match=f"span '{b_child}'"):
            await queries.get_span(store, b_trace, b_child)
        with pytest.raises(NotFoundError, match=f"span '{b_root}'"):
            await queries.get_span_tree(store, b_root, None, None)
    finally:
        TRACES_OF.reset(token)


async def test_a_span_continuing_a_callers_trace_is_its_root_here(
    store: TraceStore, writer: StoreWriter
) -> None:
    tracer = _tracer(writer)
    caller = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    for name in ("server", "second request of the same trace"):
        with tracer.start_as_current_span(name, context=trace.set_span_in_context(NonRecordingSpan(caller))):
            pass
    await writer.flush()
    [found] = await queries.query_traces(store, None, 10, 0, None)  # listed once: its earliest root
    assert found.trace_id == "0af7651916cd43dd8448eb211c80319c"
    got = await queries.get_span(store, found.trace_id, found.root_span_id)
    assert got.parent_span_id == "b7ad6b7169203331" and got.name == "server"
    assert (await queries.get_trace(store, found.trace_id)).root_span_id == found.root_span_id


async def test_listing_traces_reads_each_traces_own_spans_not_every_root(store: TraceStore) -> None:
    """The once-per-trace condition of query_traces looks a trace's spans up by its id: with SQLite's
    root index instead it walked every root for each one (63 s for 100 traces of 100,000 spans)."""
    if store.backend != "sqlite":
        pytest.skip("the query plan checked is SQLite's")
    cond = [QueryCondition(key="gen_ai.request.model", op="eq", value="m")]
    sql, params = queries.traces_sql(store, cond, 100, 0, None)
    plan = [row[-1] for row in await store._fetch("EXPLAIN QUERY PLAN " + sql, params)]
    inner = [step for step in plan if step.startswith("SEARCH e ") or step.startswith("SCAN e")]
    assert inner and all("(trace_id=?)" in step for step in inner), plan


async def test_every_lookup_of_a_span_by_its_ids_uses_an_index(store: TraceStore) -> None:
    """With two random-id indexes instead of three (no primary key), a span is still found by its ids, by
    its id alone (get_span_tree's start) and a tree's children by their parent, without a scan."""
    if store.backend != "sqlite":
        pytest.skip("the query plan checked is SQLite's")
    s = store.spans
    lookups = {
        f"SELECT name FROM {s} WHERE trace_id = ? AND span_id = ?": ["a" * 32, "b" * 16],
        f"SELECT name FROM {s} WHERE span_id = ?": ["b" * 16],
        f"SELECT name FROM {s} WHERE trace_id = ? AND parent_span_id = ?": ["a" * 32, "b" * 16],
        f"SELECT name FROM {s} WHERE trace_id = ?": ["a" * 32],
    }
    for sql, params in lookups.items():
        plan = " ".join(row[-1] for row in await store._fetch("EXPLAIN QUERY PLAN " + sql, params))
        assert plan.startswith("SEARCH") and "USING INDEX" in plan, (sql, plan)


_OLD_SPANS = (
    "CREATE TABLE {s} (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, root SMALLINT NOT "
    "NULL, name TEXT NOT NULL, start_ns BIGINT NOT NULL, end_ns BIGINT, status TEXT, attributes {json} NOT "
    "NULL, service TEXT NOT NULL, expires_ns BIGINT NOT NULL, PRIMARY KEY (trace_id, span_id))"
)


async def test_a_store_made_with_the_old_primary_key_is_migrated_with_its_spans(
    store_section: dict, tmp_path: Path
) -> None:
    """Stores made before kept spans under a primary key (trace_id, span_id) plus an index on span_id: one
    random-id index more for every row. Opening one rebuilds (SQLite) or alters (PostgreSQL) it: its spans
    kept, the primary key and the old index gone, a repeated span still ignored."""
    config = trace_store_config(store_section, tmp_path / "default.db")
    store = await open_trace_store(config)
    s, t = store.spans, store.table
    json_type = "JSONB" if store.backend == "postgres" else "TEXT"
    await store._execute(f"DROP TABLE {s}", [])
    await store._execute(_OLD_SPANS.format(s=s, json=json_type), [])
    await store._execute(f"CREATE INDEX {t}_spans_span ON {s} (span_id)", [])
    old = ("a" * 32, "b" * 16, None, 1, "POST /v1/old", 1, 2, "ok", '{"k": "old"}', "svc", 2**62)
    await store.add_spans([old])
    await store.close()

    store = await open_trace_store(config)
    try:
        if store.backend == "sqlite":
            indexes = {row[1]: row[3] for row in await store._fetch(f"PRAGMA index_list({s})", [])}
            assert "pk" not in indexes.values() and f"{t}_spans_span" not in indexes, indexes
            assert indexes[f"{t}_spans_ids"] == "c", indexes
        else:
            keys = await store._fetch(
                "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'", [s]
            )
            indexes = await store._fetch("SELECT indexname FROM pg_indexes WHERE tablename = $1", [s])
            names = [r[0] for r in indexes]
            assert not keys and f"{t}_spans_span" not in names and f"{t}_spans_ids" in names, (keys, names)
        new = ("a" * 32, "c" * 16, "b" * 16, 0, "chat m", 1, 2, "ok", '{"k": "new"}', "svc", 2**62)
        await store.add_spans([old, new, new])
        tree = await queries.get_span_tree(store, "b" * 16, None, None)
        assert [(span.name, span.attributes) for span in tree.values()] == [
            ("POST /v1/old", {"k": "old"}),
            ("chat m", {"k": "new"}),
        ]
    finally:
        await store.close()


async def test_a_recorded_exception_is_kept_as_an_error_event_of_its_span(
    store: TraceStore, writer: StoreWriter
) -> None:
    tracer = _tracer(writer)
    with tracer.start_as_current_span("fails", record_exception=False) as span:
        span.record_exception(ValueError("the upstream said no"))
        span.add_event("retrying", {"attempt": 2})
    await writer.flush()
    trace_id, span_id = _ids(span)
    events = await store.events_of(trace_id, span_id)
    assert [(e["severity"], e["message"]) for e in events] == [
        ("error", "the upstream said no"),
        ("info", "retrying"),
    ]
    assert events[0]["attributes"]["exception.type"] == "ValueError"
    assert events[1]["attributes"] == {"attempt": 2, "event.name": "retrying"}


async def test_a_full_queue_drops_and_counts_instead_of_blocking(store: TraceStore) -> None:
    writer = StoreWriter(store, ttl_seconds=3600, max_queue=3)
    tracer = _tracer(writer)
    for i in range(5):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    assert writer.dropped_spans == 2
    await writer.close()
    assert len(await queries.query_traces(store, None, 100, 0, None)) == 3


async def test_expired_rows_are_pruned(store: TraceStore) -> None:
    writer = StoreWriter(store, ttl_seconds=60)
    tracer = _tracer(writer)
    with tracer.start_as_current_span("old"):
        pass
    await writer.flush()
    assert len(await queries.query_traces(store, None, 10, 0, None)) == 1
    assert await store.prune(now_ns=time.time_ns()) == 0
    assert await store.prune(now_ns=time.time_ns() + 61 * 1_000_000_000) == 1
    assert await queries.query_traces(store, None, 10, 0, None) == []


async def test_token_metrics_answer_under_llama_stack_names(store: TraceStore, writer: StoreWriter) -> None:
    reader = PeriodicExportingMetricReader(StoreMetricExporter(writer), export_interval_millis=3_600_000)
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    for model, inp, out in (("m1", 10, 3), ("m1", 20, 4), ("m2", 7, 1)):
        labels = {"gen_ai.request.model": model, "lamina.provider.id": "fake"}
        tokens.record(inp, {**labels, "gen_ai.token.type": "input"})
        tokens.record(out, {**labels, "gen_ai.token.type": "output"})
    reader.force_flush()
    tokens.record(
        100, {"gen_ai.request.model": "m1", "lamina.provider.id": "fake", "gen_ai.token.type": "input"}
    )
    reader.force_flush()  # a second delta: the store adds them up
    await writer.flush()
    now = int(time.time())

    def ask(name: str, **kw: object) -> QueryMetricsRequest:
        return QueryMetricsRequest(metric_name=name, start_time=now - 60, end_time=now + 60, **kw)

    prompt = await queries.query_metrics(store, ask("prompt_tokens", granularity="1h"))
    by_model = {dict((lab.name, lab.value) for lab in s.labels)["model_id"]: s for s in prompt}
    assert sum(p.value for p in by_model["m1"].values) == 130
    assert sum(p.value for p in by_model["m2"].values) == 7
    assert {lab.name: lab.value for lab in by_model["m2"].labels} == {"model_id": "m2", "provider_id": "fake"}
    assert all(p.timestamp % 3600 == 0 for p in by_model["m1"].values)

    total = await queries.query_metrics(
        store,
        ask(
            "total_tokens",
            query_type=MetricQueryType.INSTANT,
            label_matchers=[MetricLabelMatcher(name="model_id", value="m1")],
        ),
    )
    assert [[p.value for p in s.values] for s in total] == [[137.0]]
    ne = await queries.query_metrics(
        store,
        ask(
            "completion_tokens",
            label_matchers=[MetricLabelMatcher(name="model_id", value="m1", operator="!=")],
        ),
    )
    assert [sum(p.value for p in s.values) for s in ne] == [1.0]
    regex = await queries.query_metrics(
        store,
        ask(
            "completion_tokens",
            label_matchers=[MetricLabelMatcher(name="model_id", value="m.", operator="=~")],
        ),
    )
    assert len(regex) == 2
    not_regex = await queries.query_metrics(
        store,
        ask(
            "completion_tokens",
            label_matchers=[MetricLabelMatcher(name="model_id", value="m1", operator="!~")],
        ),
    )
    assert [dict((lab.name, lab.value) for lab in s.labels)["model_id"] for s in not_regex] == ["m2"]
    # The core's histogram itself: sum and count series.
    count = await queries.query_metrics(
        store, ask("gen_ai.client.token.usage.count", query_type=MetricQueryType.INSTANT)
    )
    assert sum(s.values[0].value for s in count) == 7
    earlier = QueryMetricsRequest(metric_name="prompt_tokens", start_time=now - 7200, end_time=now - 3600)
    assert await queries.query_metrics(store, earlier) == []

    with pytest.raises(BadRequestError, match="granularity: '5 minutes'"):
        await queries.query_metrics(store, ask("prompt_tokens", granularity="5 minutes"))
    with pytest.raises(BadRequestError, match=r"label_matchers\[0\].value"):
        await queries.query_metrics(
            store,
            ask(
                "prompt_tokens",
                label_matchers=[MetricLabelMatcher(name="model_id", value="(", operator="=~")],
            ),
        )
    with pytest.raises(BadRequestError, match="end_time"):
        await queries.query_metrics(store, QueryMetricsRequest(metric_name="x", start_time=100, end_time=50))
