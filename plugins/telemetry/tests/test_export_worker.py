"""The OTLP span export runs in a child process (lamina_telemetry.export_worker), off the gateway's GIL.

Real parts: a real child process, the stock OTLP/HTTP exporter in it, a real OTLP receiver on 127.0.0.1.
"""

from __future__ import annotations

import io
import marshal
import os
import signal
import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from lamina.testing.otlp_receiver import OtlpReceiver
from lamina_telemetry.config import TelemetryConfig
from lamina_telemetry.tracing_setup import build_tracer_provider, span_pipe


def _config(receiver: OtlpReceiver) -> TelemetryConfig:
    return TelemetryConfig(
        sinks=["otel_trace"], otel_trace_endpoint=receiver.traces_endpoint, service_name="worker-test"
    )


def _worker(provider: Any) -> Any:
    processor = span_pipe(provider)
    assert processor is not None
    return processor


def test_spans_reach_the_collector_whole_without_being_encoded_in_this_process(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Encoding here would fail: the spans must be encoded (and posted) by the exporter's own process.
    from opentelemetry.exporter.otlp.proto.http import trace_exporter

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("OTLP encoding ran in the gateway's process")

    monkeypatch.setattr(trace_exporter, "encode_spans", refuse)
    provider = build_tracer_provider(_config(otlp_receiver))
    tracer = provider.get_tracer("lamina")
    root = tracer.start_span("POST /v1/x", kind=SpanKind.SERVER, attributes={"http.route": "/v1/x"})
    ctx = trace.set_span_in_context(root)
    linked = tracer.start_span("linked")
    linked.end()
    child = tracer.start_span(
        "chat m",
        context=ctx,
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.usage.input_tokens": 3, "list": ["a", "b"], "f": 0.5, "b": True},
        links=[Link(linked.get_span_context(), {"why": "batch"})],
    )
    child.record_exception(ValueError("bad input"))
    child.set_status(Status(StatusCode.ERROR, "bad input"))
    child.end()
    root.end()
    provider.shutdown()  # flushes: everything is at the receiver when it returns

    spans = {s.name: s for s in otlp_receiver.spans()}
    assert set(spans) == {"POST /v1/x", "linked", "chat m"}
    server, chat, link_target = spans["POST /v1/x"], spans["chat m"], spans["linked"]
    assert chat.parent_span_id == server.span_id and chat.trace_id == server.trace_id
    assert server.parent_span_id is None and server.kind == "SERVER" and chat.kind == "CLIENT"
    assert chat.attributes == {"gen_ai.usage.input_tokens": 3, "list": ["a", "b"], "f": 0.5, "b": True}
    assert chat.status == "ERROR" and chat.status_message == "bad input"
    assert [name for name, _ in chat.events] == ["exception"]
    assert chat.events[0][1]["exception.message"] == "bad input"
    assert chat.links == [(link_target.trace_id, link_target.span_id)]
    assert server.resource["service.name"] == "worker-test" and server.scope == "lamina"
    assert chat.end_ns >= chat.start_ns > 0


def test_a_worker_that_dies_is_restarted(otlp_receiver: OtlpReceiver) -> None:
    provider = build_tracer_provider(_config(otlp_receiver))
    tracer = provider.get_tracer("lamina")
    worker = _worker(provider)
    tracer.start_span("before").end()
    otlp_receiver.wait_for_spans(lambda s: s.name == "before")
    first = worker.pid
    assert first is not None and first != os.getpid()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not otlp_receiver.spans() or "after" not in {s.name for s in otlp_receiver.spans()}:
        assert time.monotonic() < deadline, "spans after the worker died never arrived"
        tracer.start_span("after").end()
        time.sleep(0.5)
    assert worker.pid not in (None, first)
    assert worker.restarts >= 1
    provider.shutdown()


def test_a_full_queue_drops_and_counts_instead_of_blocking(otlp_receiver: OtlpReceiver) -> None:
    provider = build_tracer_provider(_config(otlp_receiver))
    worker = _worker(provider)
    worker.max_queue = 10
    tracer = provider.get_tracer("lamina")
    with worker._cond:  # the sending thread cannot take spans meanwhile
        started = time.monotonic()
        for _ in range(50):
            tracer.start_span("many").end()
        assert time.monotonic() - started < 5
    assert worker.dropped >= 40
    provider.shutdown()
    assert 1 <= len(otlp_receiver.spans()) <= 10


async def test_span_rows_are_written_by_the_worker_not_this_process(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trace store's span rows (the sqlite sink) are built and inserted by the export worker: here
    inserting would fail. A query's ``flush_store`` round trip makes them visible; the telemetry API's
    own requests are not stored."""
    from lamina_telemetry.queries import query_traces
    from lamina_telemetry.store import TraceStore, open_trace_store, trace_store_config

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("span rows were written by the gateway's process")

    monkeypatch.setattr(TraceStore, "add_spans", refuse)
    resolved = trace_store_config({"type": "sqlite", "db_path": str(tmp_path / "traces.db")}, tmp_path)
    provider = build_tracer_provider(
        TelemetryConfig(sinks=["sqlite"], service_name="store-test", tracer="lean"),
        store=resolved.model_dump(mode="json"),
    )
    tracer = provider.get_tracer("lamina")
    with tracer.start_as_current_span("POST /v1/chat/completions", attributes={"http.route": "/x"}) as kept:
        with tracer.start_as_current_span("chat m", attributes={"gen_ai.usage.input_tokens": 3}):
            pass
    polled = tracer.start_span("GET /v1/telemetry/traces", attributes={"url.path": "/v1/telemetry/traces"})
    polled.end()
    assert _worker(provider).flush_store(30)
    store = await open_trace_store(resolved)
    try:
        traces = await query_traces(store, None, 10, 0, None)
        assert [t.trace_id for t in traces] == [format(kept.get_span_context().trace_id, "032x")]
        rows = await store._fetch(f"SELECT name, attributes FROM {store.spans} ORDER BY start_ns", [])
        assert [tuple(r) for r in rows] == [
            ("POST /v1/chat/completions", '{"http.route":"/x"}'),
            ("chat m", '{"gen_ai.usage.input_tokens":3}'),
        ]
        assert _worker(provider).store_error is None
    finally:
        await store.close()
        provider.shutdown()


def test_a_send_after_shutdown_closed_the_pipe_is_dropped_quietly(otlp_receiver: OtlpReceiver) -> None:
    """A shutdown that stops waiting for the sending thread (a collector that does not answer) closes the
    worker's pipe; the thread's next write used to raise "ValueError: write to closed file" out of the
    thread. Now it is counted lost and no worker is started again."""
    provider = build_tracer_provider(_config(otlp_receiver))
    worker = _worker(provider)
    provider.shutdown()
    assert worker._proc.stdin.closed
    worker._proc.poll = lambda: None  # the window in which the worker has not exited yet
    assert worker._send(("spans", [b"x"]), spans=1) is False
    assert (worker.lost, worker.restarts) == (1, 0)


def _spans_message(count: int) -> tuple[str, list[tuple[Any, ...]]]:
    """A "spans" message as the gateway's sending thread makes it: ``count`` span records."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lamina_telemetry.export_worker import record

    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    for i in range(count):
        provider.get_tracer("test").start_span(f"POST /v1/x{i}").end()
    return ("spans", [record(span) for span in finished.get_finished_spans()])


def _counted_store_writer(tmp_path: Any) -> tuple[Any, list[int]]:
    """The worker's trace store writer on a real SQLite file, counting its transactions' span rows."""
    from lamina_telemetry.export_worker import _StoreWriter

    writer = _StoreWriter({"type": "sqlite", "db_path": str(tmp_path / "traces.db")}, 3600 * 10**9, "svc")
    transactions: list[int] = []
    add_spans = writer.store.add_spans

    async def counted(rows: Any, events: Any = None) -> None:
        await add_spans(rows, events)
        transactions.append(len(rows))  # once committed

    writer.store.add_spans = counted
    return writer, transactions


@pytest.mark.parametrize(("most_rows", "transactions"), [(8192, [15]), (4, [6, 6, 3])])
def test_batches_that_wait_together_are_stored_in_one_transaction(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, most_rows: int, transactions: list[int]
) -> None:
    """A worker that is behind finds several batches waiting: their rows go to the store in one
    transaction (a random index page that many rows dirty is written once), up to STORE_ROWS, and a
    flush writes what is gathered before it answers."""
    from lamina_telemetry import export_worker

    monkeypatch.setattr(export_worker, "STORE_ROWS", most_rows)
    writer, counted = _counted_store_writer(tmp_path)
    read_end, write_end = os.pipe()
    with open(write_end, "wb") as pipe:
        for _ in range(5):
            export_worker._write_to(pipe, _spans_message(3))
        export_worker._write_to(pipe, ("flush", False))
    answers = io.BytesIO()
    try:
        with open(read_end, "rb", buffering=0) as pipe:
            export_worker.serve(pipe, answers, None, writer)
        assert counted == transactions
        assert marshal.loads(answers.getvalue()[4:]) == ("done", None)
        select = f"SELECT name FROM {writer.store.spans}"
        rows = writer.loop.run_until_complete(writer.store._fetch(select, []))
        assert sorted(r[0] for r in rows) == sorted(f"POST /v1/x{i}" for _ in range(5) for i in range(3))
    finally:
        writer.close()


def test_a_batch_that_comes_alone_is_stored_without_waiting_for_more(tmp_path: Any) -> None:
    """Gathering never waits for a batch that has not come: a worker that keeps up writes each one as it
    reads it (a query's flush aside, what a reader of the store sees stays current)."""
    import sqlite3

    from lamina_telemetry import export_worker

    writer, counted = _counted_store_writer(tmp_path)
    read_end, write_end = os.pipe()
    with open(read_end, "rb", buffering=0) as inbound, open(write_end, "wb") as outbound:
        loop = threading.Thread(target=export_worker.serve, args=(inbound, io.BytesIO(), None, writer))
        loop.start()
        try:
            export_worker._write_to(outbound, _spans_message(3))
            deadline = time.monotonic() + 30
            while not counted and time.monotonic() < deadline:
                time.sleep(0.01)
            assert counted == [3]
            with sqlite3.connect(tmp_path / "traces.db") as db:
                assert db.execute(f"SELECT count(*) FROM {writer.store.spans}").fetchone() == (3,)
        finally:
            outbound.close()
            loop.join(30)
    assert not loop.is_alive() and counted == [3]
    writer.close()


def test_a_message_that_arrives_in_pieces_is_read_whole() -> None:
    """The worker reads its pipe unbuffered (so that select() tells whether a batch waits): a message
    whose bytes arrive in several writes is still read as one."""
    from lamina_telemetry import export_worker

    message = _spans_message(40)
    data = marshal.dumps(message)
    framed = export_worker._HEADER.pack(len(data)) + data
    read_end, write_end = os.pipe()

    half = len(framed) // 2

    def trickle() -> None:
        with open(write_end, "wb", buffering=0) as pipe:
            for piece in (framed[:2], framed[2:7], framed[7:half], framed[half:]):  # header split too
                pipe.write(piece)
                time.sleep(0.05)

    sender = threading.Thread(target=trickle)
    sender.start()
    with open(read_end, "rb", buffering=0) as pipe:
        assert export_worker._read(pipe) == message
        assert export_worker._read(pipe) is None  # the pipe's end
    sender.join(10)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's SCHED_IDLE")
def test_every_thread_of_the_worker_runs_on_idle_cpu_time_only(otlp_receiver: OtlpReceiver) -> None:
    """The worker yields its core at once to any ordinary process that wakes (a niced one held it for a
    slice, delaying a co-located upstream or client): SCHED_IDLE, inherited by its export and store
    threads."""
    from pathlib import Path

    provider = build_tracer_provider(_config(otlp_receiver))
    worker = _worker(provider)
    try:
        provider.get_tracer("test").start_span("one").end()
        assert worker.force_flush(30_000)
        threads = [int(t.name) for t in Path(f"/proc/{worker.pid}/task").iterdir()]
        assert len(threads) >= 2  # the main one and the OTLP export thread
        assert {os.sched_getscheduler(t) for t in threads} == {os.SCHED_IDLE}
    finally:
        provider.shutdown()


def test_without_sched_idle_the_worker_is_niced_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    from lamina_telemetry import export_worker

    niced: list[int] = []

    def refuse(*args: Any) -> None:
        raise PermissionError("not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(os, "nice", niced.append)
    assert export_worker.lower_priority() == "nice" and niced == [export_worker.WORKER_NICE]
