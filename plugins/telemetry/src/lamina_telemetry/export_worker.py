"""Span export in a child process, off the gateway's GIL: OTLP and the trace store's rows.

Encoding spans to OTLP protobuf and posting them cost the gateway about 50 µs of CPU a span in the SDK's
BatchSpanProcessor thread (the GIL is the request path's too): a third of what telemetry cost a chat
completion (docs/benchmarks.md, "Telemetry cost"). Here the gateway only turns each finished span into a tuple
of plain values (``record``, a few µs) and appends it to a bounded queue; a thread marshals batches of them
(``marshal_batch``: one call a batch) and sends them down a pipe to ``python -m
lamina_telemetry.export_worker``, which encodes them as OTLP straight from the records (otlp_records: no SDK
span objects; the stock exporter's HTTP client posts them) behind tracing_setup.ExportLog (a failing collector
is logged once, by the worker, on the telemetry provider's stderr). The same worker writes the trace store's
span rows from the same records (sqlite or postgres, the ``sqlite`` sink): building and inserting them cost
the gateway another ~50 µs a request (the row, aiosqlite's thread, SQLite's own CPU on the gateway's core).
The worker's own cost matters too: on a machine where it shares a core with other work, what it cannot keep up
with is dropped (see below); docs/benchmarks.md, "Telemetry cost", step 7. The gateway keeps the store's other
writes (log_event, metric points: rare) and every query; a query first asks the worker to write what it was
sent (``flush_store``: one round trip), so it sees the requests before it.

A lean span's record may carry raw values instead of attributes (lamina.telemetry.derived: the worker
builds and redacts them, so it is sent the server's known secrets) and the records of the spans that
ended inside it (``riders``, lean_tracer.DeferringLeanSpan): one record a request.

Never in a request's way: a full queue drops new spans and counts them (``dropped``); a worker that
died is started again by the sending thread (``restarts``; the batch in flight is lost and counted in
``lost``); a slow collector only holds up the sending thread. ``force_flush`` and ``shutdown`` wait
(bounded) until the worker has exported what was queued before them.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import IO, Any

import structlog
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from lamina.redaction import known_secrets, register_secrets
from lamina_telemetry.lean_tracer import event_records, link_records

log = structlog.get_logger("lamina.telemetry")

_HEADER = struct.Struct("!I")
_ERROR = StatusCode.ERROR.value
WORKER_NICE = 10
#: most span rows the worker gathers for one trace store transaction while more batches wait
STORE_ROWS = 8192


def record(span: ReadableSpan) -> tuple[Any, ...]:
    """A finished span as plain values (what the worker's ``rebuild`` turns back into a span). Only
    tuples and atoms (attributes as ``(key, value)`` pairs, flat_records makes them dicts again): the
    garbage collector untracks such tuples, so records waiting in the queue are not walked by every
    collection."""
    ctx = span.context
    parent = span.parent
    status = span.status
    scope = span.instrumentation_scope
    return (
        span.name,
        ctx.trace_id,
        ctx.span_id,
        int(ctx.trace_flags),
        ctx.trace_state.to_header() if ctx.trace_state else "",
        (parent.span_id, parent.is_remote) if parent is not None else None,
        span.kind.value,
        span.start_time,
        span.end_time,
        status.status_code.value,
        status.description,
        tuple(span.attributes.items()) if span.attributes else None,
        event_records(span.events) if span.events else None,
        link_records(span.links) if span.links else None,
        (scope.name, scope.version, scope.schema_url) if scope is not None else None,
    )


def marshal_batch(records: list[tuple[Any, ...]]) -> bytes:
    """The "spans" message for ``records``, marshalled as one: one call and shared strings written once
    (0.7 µs a chat completion's record against 1.6 one by one). A record holding a raw value marshal
    refuses (lamina.telemetry.derived) has its deferred attributes built here instead."""
    try:
        return marshal.dumps(("spans", records))
    except ValueError:
        pass
    sendable = []
    for made in records:
        try:
            marshal.dumps(made)
        except ValueError:
            made = _built_here(made)
        sendable.append(made)
    return marshal.dumps(("spans", sendable))


class PipeSpanProcessor(SpanProcessor):
    """Queues finished, sampled spans as records for the export worker (see the module's docstring)."""

    builds_derived = True  # lamina.telemetry.derived: the worker builds a lean span's deferred attributes

    def __init__(
        self,
        endpoint: str | None,
        resource: Mapping[str, Any],
        *,
        timeout: float,
        store: Mapping[str, Any] | None = None,
        ttl_seconds: int = 0,
        max_queue: int = 4096,
        batch: int = 512,
        interval: float = 1.0,
    ) -> None:
        # endpoint: OTLP/HTTP traces URL (None: no OTLP); store: the trace store's config as JSON (None: none)
        self.endpoint = endpoint
        self.store = dict(store) if store is not None else None
        self.ttl_ns = ttl_seconds * 1_000_000_000
        self.store_error: str | None = None  # the worker's last failed store write, until one succeeds
        self.resource = dict(resource)
        self.timeout = timeout
        self.max_queue = max_queue
        self.batch = batch
        self.interval = interval
        self.dropped = 0  # spans refused by a full queue
        self.lost = 0  # spans in batches a dying worker did not take
        self.restarts = 0
        # Records (tuples and atoms only, marshalled a batch at a time by the sending thread): the collector
        # untracks such tuples as it passes over them (a level of nesting a pass). Measured in-process with
        # a 300,000-object live heap and Lamina's gc settings: 0.9-1.7 µs a request cheaper than marshalling
        # each record at once, collections included.
        self._queue: deque[tuple[Any, ...]] = deque()
        self._cond = threading.Condition()
        self._flushes: list[tuple[threading.Event, bool]] = []  # (done, wait for the OTLP export too)
        self._stopping = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._logged_drops = 0
        self._secrets_sent = 0
        self._start_worker()
        self._thread = threading.Thread(target=self._run, name="otlp-export-pipe", daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # -- the request path: one tuple appended ------------------------------------------------------

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        fast = getattr(span, "export_record", None)  # a lean span (only sampled ones are ever ended)
        if fast is not None:
            queue.append(fast())
        elif span.context.trace_flags.sampled:
            queue.append(record(span))
        else:
            return
        if len(queue) == self.batch:
            with self._cond:
                self._cond.notify()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until the worker has exported and stored what was queued before (blocking: not on a loop)."""
        return self._flush(timeout_millis / 1000, export=True)

    def flush_store(self, timeout: float = 30.0) -> bool:
        """Wait until the worker has written to the trace store what was queued before (a slow collector
        does not hold this up); blocking: the provider calls it through ``asyncio.to_thread``."""
        return self._flush(timeout, export=False)

    def _flush(self, timeout: float, *, export: bool) -> bool:
        done = threading.Event()
        with self._cond:
            if self._stopping:
                return True
            self._flushes.append((done, export))
            self._cond.notify()
        return done.wait(timeout)

    def shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(self.timeout * 2 + 5)
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]  # EOF: the worker exports the rest and exits
            try:
                proc.wait(self.timeout + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- the sending thread ------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._started_at = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "lamina_telemetry.export_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # acknowledgements of flushes; the worker logs on stderr
            env=os.environ.copy(),
        )
        secrets = known_secrets()
        self._write(("init", self.endpoint, self.resource, self.timeout, self.store, self.ttl_ns, secrets))
        self._secrets_sent = len(secrets)

    def _write(self, message: Any) -> None:
        data = message if type(message) is bytes else marshal.dumps(message)
        stdin = self._proc.stdin  # type: ignore[union-attr]
        stdin.write(_HEADER.pack(len(data)) + data)  # type: ignore[union-attr]
        stdin.flush()  # type: ignore[union-attr]

    def _send(self, message: Any, spans: int = 0) -> bool:
        """Write ``message`` (or its marshalled bytes) to the worker; a dead worker is replaced (its message
        is lost)."""
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._write(message)
                return True
        except (OSError, ValueError):  # ValueError: shutdown closed the pipe while this thread still sent
            pass
        self.lost += spans
        if self._stopping and self._proc is not None and self._proc.stdin.closed:  # type: ignore[union-attr]
            return False  # shut down (a shutdown that stopped waiting for this thread): not restarted
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            self._proc.wait()
        if time.monotonic() - self._started_at < 1.0:
            time.sleep(1.0)  # a worker that dies at once is not restarted in a tight loop
        log.warning(
            "telemetry_export_worker_restarted",
            endpoint=self.endpoint,
            exit_code=self._proc.returncode if self._proc is not None else None,
            lost_spans=self.lost,
        )
        self.restarts += 1
        try:
            self._start_worker()
        except OSError as exc:
            log.warning("telemetry_export_worker_failed", error=str(exc))
        return False

    def _await_ack(self) -> bool:
        """The worker's answer to a flush: done, with its trace store's last write error (or None)."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return False
        deadline = time.monotonic() + self.timeout * 2 + 5
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                answer = _read(proc.stdout)
                if answer is None:
                    return False
                self.store_error = answer[1]
                return True
            if proc.poll() is not None:
                return False
        return False

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping or self._flushes or len(self._queue) >= self.batch, self.interval
                )
                stopping, flushes, self._flushes = self._stopping, self._flushes, []
            secrets = known_secrets()  # the worker redacts derived attributes: it needs any new ones first
            if len(secrets) != self._secrets_sent and self._send(("secrets", secrets)):
                self._secrets_sent = len(secrets)
            queue = self._queue
            while queue:
                spans = [queue.popleft() for _ in range(min(self.batch, len(queue)))]
                self._send(marshal_batch(spans), len(spans))
            if flushes or stopping:
                if self._send(("flush", stopping or any(export for _, export in flushes))):
                    self._await_ack()
                for done, _ in flushes:
                    done.set()
            if self.dropped > self._logged_drops:
                log.warning(
                    "telemetry_export_queue_full", dropped_spans=self.dropped, max_queue=self.max_queue
                )
                self._logged_drops = self.dropped
            if stopping:
                return


# -- the worker process ---------------------------------------------------------------------------


def _read(stream: IO[bytes]) -> Any:
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    data = _read_exactly(stream, size)
    return None if data is None else marshal.loads(data)


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """``size`` bytes of ``stream`` (a pipe's raw reads may be short); None at its end."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        if not (more := stream.read(size - got)):
            return None
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _waiting(stream: IO[bytes]) -> bool:
    """Whether a message is already waiting on ``stream`` (unbuffered)."""
    return bool(select.select([stream], [], [], 0)[0])


def _write_to(stream: IO[bytes], message: Any) -> None:
    data = marshal.dumps(message)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def lower_priority() -> str:
    """Put this process (its threads started after: they inherit it) below every ordinary one: Linux's
    SCHED_IDLE, which runs only on CPU time nothing else wants and yields at once to any ordinary process
    that wakes, else ``nice`` +10. On a busy machine the export waits (its queue bounded, spans dropped and
    counted past it) rather than taking CPU from requests, or delaying a process that serves them (a
    niced worker still holds its core for a slice before a woken upstream or client gets it). Which one
    it got."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (AttributeError, OSError):  # not Linux, or refused
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICE)
        return "nice"


def main() -> None:
    from lamina.logging import configure_logging
    from lamina_telemetry.tracing_setup import _EXPORTER_LOGGERS

    configure_logging()
    lower_priority()
    for name in _EXPORTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    stdin, stdout = sys.stdin.buffer.raw, sys.stdout.buffer  # unbuffered: select() sees what waits
    init = _read(stdin)
    if init is None:
        return
    _, endpoint, resource_attributes, timeout, store_config, ttl_ns, secrets = init
    register_secrets(secrets)  # the server's own (run config): derived attributes are redacted here
    exporter = _ExportThread(endpoint, timeout, resource_attributes) if endpoint else None
    service = str(resource_attributes.get("service.name", ""))
    store = _StoreWriter(store_config, ttl_ns, service) if store_config is not None else None
    try:
        serve(stdin, stdout, exporter, store)
    finally:
        if exporter is not None:
            exporter.close()
        if store is not None:
            store.close()


def serve(
    stdin: IO[bytes], stdout: IO[bytes], exporter: _ExportThread | None, store: _StoreWriter | None
) -> None:
    """The worker's loop over the gateway's messages until its pipe closes (``stdin`` unbuffered)."""
    while True:
        # The store's rows wait while more batches do (one transaction for several: a random index
        # page dirtied by many rows is written once), never past STORE_ROWS nor a flush.
        if store is not None and store.rows and (len(store.rows) >= STORE_ROWS or not _waiting(stdin)):
            store.write()
        if (message := _read(stdin)) is None:
            break
        if message[0] == "spans":
            records = [span for made in message[1] for span in flat_records(made)]
            if exporter is not None:
                exporter.put(records)
            if store is not None:
                store.add(records)
        elif message[0] == "secrets":  # registered in the server after this worker started
            register_secrets(message[1])
        elif message[0] == "flush":
            if store is not None:
                store.write()
            if message[1] and exporter is not None:
                exporter.join()
            _write_to(stdout, ("done", store.last_error if store is not None else None))
    if store is not None:
        store.write()


def _built_here(made: tuple[Any, ...], secrets: Any = None) -> tuple[Any, ...]:
    """A lean span's record (its riders' too) with its deferred attributes built now, in the gateway,
    instead of by the worker: for a raw value marshal refuses (marshal_batch, in the gateway's sending
    thread). ``secrets``: the host's, for a rider."""
    riders = made[16] if len(made) > 16 else None
    derived = made[15] if len(made) > 15 else None
    if secrets is None:
        secrets = made[17] if len(made) > 17 else ()
    head = made[:15]
    if derived:
        head = (*made[:11], _derived_attributes(derived, made[11], secrets), *made[12:15])
    return (*head, None, [_built_here(rider, secrets) for rider in riders] if riders else None, ())


def _derived_attributes(derived: Any, attributes: Mapping[str, Any] | None, secrets: Any) -> dict[str, Any]:
    """A span's attributes: those built from its deferred entries (lamina.telemetry.derived) with its
    request's ``secrets``, then those set directly (which win)."""
    from lamina.telemetry.derived import build

    built = build(derived, secrets)
    if attributes:
        built.update(attributes)
    return built


def flat_records(r: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The spans of record ``r`` (``record``; its riders too, lean_tracer.DeferringLeanSpan), each as a
    record of ``record``'s 15 fields with its deferred attributes built (and redacted with its request's
    secrets): what the OTLP encoder (otlp_records) and the store rows read."""
    riders = r[16] if len(r) > 16 else None
    secrets = r[17] if len(r) > 17 else ()
    if not riders:
        return [_flat(r, secrets)]
    return [_flat(r, secrets), *(_flat(rider, secrets) for rider in riders)]


def _flat(r: tuple[Any, ...], secrets: Any) -> tuple[Any, ...]:
    """``r``'s first 15 fields, its attributes (built from its deferred ones, if any), events' and links'
    as dicts again."""
    attributes = r[11]
    if len(r) > 15 and r[15]:
        attributes = _derived_attributes(r[15], attributes, secrets)
    elif attributes is not None:
        attributes = dict(attributes)
    events = r[12]
    if events:
        events = [(name, at, dict(attrs) if attrs else None) for name, at, attrs in events]
    links = r[13]
    if links:
        links = [(trace_id, span_id, flags, dict(attrs)) for trace_id, span_id, flags, attrs in links]
    return (*r[:11], attributes, events, links, r[14])


def record_rows(
    records: list[tuple[Any, ...]], service: str, ttl_ns: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The trace store's span rows and event rows for ``records`` (flat_records), but the spans it does
    not keep (store_writer.stored_attributes): the rows store_writer.span_row makes from the same spans."""
    from lamina_telemetry.store_writer import event_rows, make_row, stored_attributes

    rows: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    for r in records:
        attributes = r[11]
        if not stored_attributes(attributes):
            continue
        # trace_id, span_id, parent, name, start, end, error, attributes (``record``'s fields)
        error = r[9] == _ERROR
        row = make_row(r[1], r[2], r[5], r[0], r[7], r[8], error, attributes or {}, service, ttl_ns)
        rows.append(row)
        if r[12]:
            events.extend(event_rows(r[12], row))
    return rows, events


class _Rebuilder:
    """A flat record (``flat_records``) back into the SDK's ReadableSpan: for the stock OTLP exporter where
    otlp_records cannot post its own encoding, and for tests comparing the two."""

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self.scopes: dict[Any, Any] = {}

    def each(self, r: tuple[Any, ...]) -> list[ReadableSpan]:
        """The spans of record ``r``, as ReadableSpan."""
        return [self(flat) for flat in flat_records(r)]

    def __call__(self, r: tuple[Any, ...]) -> ReadableSpan:
        (name, trace_id, span_id, flags, state, parent, kind, start, end, code, description) = r[:11]
        attributes, events, links, scope = r[11:15]
        trace_state = TraceState.from_header([state]) if state else None
        if scope is not None and scope not in self.scopes:
            self.scopes[scope] = InstrumentationScope(*scope)
        return ReadableSpan(
            name=name,
            context=SpanContext(trace_id, span_id, False, TraceFlags(flags), trace_state),
            parent=SpanContext(trace_id, parent[0], parent[1], TraceFlags(flags)) if parent else None,
            resource=self.resource,
            attributes=attributes,
            events=[Event(n, a, timestamp=ts) for n, ts, a in events or ()],
            links=[Link(SpanContext(t, s, True, TraceFlags(f)), a) for t, s, f, a in links or ()],
            kind=SpanKind(kind),
            status=Status(StatusCode(code), description),
            start_time=start,
            end_time=end,
            instrumentation_scope=self.scopes.get(scope) if scope is not None else None,
        )


class _ExportThread:
    """OTLP/HTTP export (otlp_records.RecordExporter) on its own thread of the worker: a slow collector
    holds up only the export, never the trace store's writes. A full queue (the collector far behind)
    drops batches, logged once each time it starts dropping."""

    def __init__(
        self,
        endpoint: str,
        timeout: float,
        resource_attributes: Mapping[str, Any],
        max_batches: int = 16,
    ) -> None:
        from opentelemetry.sdk.resources import Resource

        from lamina_telemetry.otlp_records import RecordExporter
        from lamina_telemetry.tracing_setup import ExportLog

        rebuild = _Rebuilder(Resource(resource_attributes))  # the stock path's (RecordExporter)
        otlp = RecordExporter(endpoint, timeout, resource_attributes, rebuild)
        self.exporter = ExportLog(otlp, "otel_trace", endpoint)  # type: ignore[arg-type]  # records, not spans
        self.queue: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(max_batches)
        self.dropping = False
        self.thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self.thread.start()

    def put(self, spans: list[tuple[Any, ...]]) -> None:
        try:
            self.queue.put_nowait(spans)
            self.dropping = False
        except queue.Full:
            if not self.dropping:
                self.dropping = True
                log.warning(
                    "telemetry_export_behind", endpoint=self.exporter.endpoint, dropped_spans=len(spans)
                )

    def join(self) -> None:
        self.queue.join()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.exporter.shutdown()

    def _run(self) -> None:
        while (spans := self.queue.get()) is not None:
            try:
                self.exporter.export(spans)
            finally:
                self.queue.task_done()
        self.queue.task_done()


class _StoreWriter:
    """The trace store's span and span-event rows, gathered (``add``) and written in one transaction
    (``write``). A failing database is logged when writes start failing and when they recover; its error
    is reported to the gateway with each flush (the provider's health says it)."""

    def __init__(self, config: Mapping[str, Any], ttl_ns: int, service: str) -> None:
        import asyncio
        from pathlib import Path

        from lamina_telemetry.store import open_trace_store, trace_store_config

        self.loop = asyncio.new_event_loop()
        self.ttl_ns = ttl_ns
        self.service = service
        self.last_error: str | None = None
        self.rows: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        resolved = trace_store_config(dict(config), Path(str(config.get("db_path", "trace_store.db"))))
        self.store = self.loop.run_until_complete(open_trace_store(resolved))

    def add(self, records: list[tuple[Any, ...]]) -> None:
        """The rows of ``records`` (flat_records) but the spans the store does not keep, to ``write``."""
        rows, events = record_rows(records, self.service, self.ttl_ns)
        self.rows += rows
        self.events += events

    def write(self) -> None:
        """Write the rows gathered, in one transaction."""
        from lamina.storage.kvstore import StorageError

        rows, events, self.rows, self.events = self.rows, self.events, [], []
        if not rows and not events:
            return
        try:
            self.loop.run_until_complete(self.store.add_spans(rows, events))
        except StorageError as exc:
            if self.last_error is None:
                log.warning("trace_store_write_failed", error=str(exc), lost_spans=len(rows))
            self.last_error = str(exc)  # the rows are lost: a database that stays down must not hold memory
            return
        if self.last_error is not None:
            log.info("trace_store_write_recovered")
            self.last_error = None

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


if __name__ == "__main__":
    main()
