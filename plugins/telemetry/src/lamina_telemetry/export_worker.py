"""OTLP span export in a child process, off the gateway's GIL.

Encoding spans to OTLP protobuf and posting them cost the gateway about 50 µs of CPU a span in the SDK's
BatchSpanProcessor thread (the GIL is the request path's too): a third of what telemetry cost a chat
completion (docs/benchmarks.md, "Telemetry cost"). Here the gateway only turns each finished span into a
tuple of plain values (``record``, a few µs), marshals it and appends it to a bounded queue; a thread
sends batches of them down a pipe to ``python -m lamina_telemetry.export_worker``, which rebuilds the
spans and runs the stock OTLP/HTTP exporter (behind tracing_setup.ExportLog: a failing collector is
logged once, by the worker, on the telemetry provider's stderr).

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
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

log = structlog.get_logger("lamina.telemetry")

_HEADER = struct.Struct("!I")
_ACK = b"\x01"


def record(span: ReadableSpan) -> tuple[Any, ...]:
    """A finished span as plain values (what the worker's ``rebuild`` turns back into a span)."""
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
        span.attributes.copy() if span.attributes else None,  # the view's copy is a plain dict
        [(e.name, e.timestamp, dict(e.attributes) if e.attributes else None) for e in span.events]
        if span.events
        else None,
        [
            (lk.context.trace_id, lk.context.span_id, int(lk.context.trace_flags), dict(lk.attributes or {}))
            for lk in span.links
        ]
        if span.links
        else None,
        (scope.name, scope.version, scope.schema_url) if scope is not None else None,
    )


class PipeSpanProcessor(SpanProcessor):
    """Queues finished, sampled spans as records for the export worker (see the module's docstring)."""

    def __init__(
        self,
        endpoint: str,
        resource: Mapping[str, Any],
        *,
        timeout: float,
        max_queue: int = 4096,
        batch: int = 512,
        interval: float = 1.0,
    ) -> None:
        self.endpoint = endpoint
        self.resource = dict(resource)
        self.timeout = timeout
        self.max_queue = max_queue
        self.batch = batch
        self.interval = interval
        self.dropped = 0  # spans refused by a full queue
        self.lost = 0  # spans in batches a dying worker did not take
        self.restarts = 0
        self._queue: deque[bytes] = deque()  # marshalled records
        self._cond = threading.Condition()
        self._flushes: list[threading.Event] = []
        self._stopping = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._logged_drops = 0
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
        if not span.context.trace_flags.sampled:
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        # Bytes at once, not the tuple: queued tuples and dicts are objects Python's garbage collector
        # walks until they are sent (measured: +10 µs a request with a 300,000-object heap).
        queue.append(marshal.dumps(record(span)))
        if len(queue) == self.batch:
            with self._cond:
                self._cond.notify()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        done = threading.Event()
        with self._cond:
            if self._stopping:
                return True
            self._flushes.append(done)
            self._cond.notify()
        return done.wait(timeout_millis / 1000)

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
        self._write(("init", self.endpoint, self.resource, self.timeout))

    def _write(self, message: Any) -> None:
        data = marshal.dumps(message)
        stdin = self._proc.stdin  # type: ignore[union-attr]
        stdin.write(_HEADER.pack(len(data)) + data)  # type: ignore[union-attr]
        stdin.flush()  # type: ignore[union-attr]

    def _send(self, message: Any, spans: int = 0) -> bool:
        """Write ``message`` to the worker; a dead worker is replaced (its message is lost)."""
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._write(message)
                return True
        except OSError:
            pass
        self.lost += spans
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
        proc = self._proc
        if proc is None or proc.stdout is None:
            return False
        deadline = time.monotonic() + self.timeout * 2 + 5
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                return proc.stdout.read(1) == _ACK
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
            queue = self._queue
            while queue:
                spans = [queue.popleft() for _ in range(min(self.batch, len(queue)))]
                self._send(("spans", spans), len(spans))
            if flushes or stopping:
                if self._send(("flush",)):
                    self._await_ack()
                for done in flushes:
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
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return marshal.loads(stream.read(size))


def main() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

    from lamina.logging import configure_logging
    from lamina_telemetry.tracing_setup import _EXPORTER_LOGGERS, ExportLog

    configure_logging()
    for name in _EXPORTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    init = _read(stdin)
    if init is None:
        return
    _, endpoint, resource_attributes, timeout = init
    exporter = ExportLog(OTLPSpanExporter(endpoint=endpoint, timeout=timeout), "otel_trace", endpoint)
    resource = Resource(resource_attributes)
    scopes: dict[Any, InstrumentationScope] = {}

    def rebuild(r: tuple[Any, ...]) -> ReadableSpan:
        (name, trace_id, span_id, flags, state, parent, kind, start, end, code, description) = r[:11]
        attributes, events, links, scope = r[11:]
        trace_state = TraceState.from_header([state]) if state else None
        if scope is not None and scope not in scopes:
            scopes[scope] = InstrumentationScope(*scope)
        return ReadableSpan(
            name=name,
            context=SpanContext(trace_id, span_id, False, TraceFlags(flags), trace_state),
            parent=SpanContext(trace_id, parent[0], parent[1], TraceFlags(flags)) if parent else None,
            resource=resource,
            attributes=attributes,
            events=[Event(n, a, timestamp=ts) for n, ts, a in events or ()],
            links=[Link(SpanContext(t, s, True, TraceFlags(f)), a) for t, s, f, a in links or ()],
            kind=SpanKind(kind),
            status=Status(StatusCode(code), description),
            start_time=start,
            end_time=end,
            instrumentation_scope=scopes.get(scope) if scope is not None else None,
        )

    while (message := _read(stdin)) is not None:
        if message[0] == "spans":
            exporter.export([rebuild(marshal.loads(r)) for r in message[1]])
        elif message[0] == "flush":
            stdout.write(_ACK)
            stdout.flush()
    exporter.shutdown()


if __name__ == "__main__":
    main()
