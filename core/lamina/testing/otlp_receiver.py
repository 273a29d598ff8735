"""An OTLP/HTTP receiver for tests: what a collector would get from ``lamina run``, decoded.

It serves ``POST /v1/traces`` and ``POST /v1/metrics`` (protobuf, optionally gzip), decodes the
``opentelemetry.proto.collector.{trace,metrics}.v1`` export requests and keeps flat records a test can
assert on: :class:`ReceivedSpan` (ids as hex, attributes as a plain dict, parent id, kind, status,
events, links, resource) and :class:`ReceivedMetricPoint` (one data point each). It can also behave
like a collector that is in trouble: ``receiver.behave(delay=10)`` (slow), ``receiver.behave(status=503)``
(errors); a collector that is down is simply a port nobody listens on.

It runs an aiohttp server on 127.0.0.1 in a thread of the test process (its own event loop), so a
test reads what arrived without any IPC. Needs ``opentelemetry-proto`` (installed with lamina-telemetry).

Use the ``otlp_receiver`` fixture (lamina.testing.pytest_plugin) or ``with OtlpReceiver() as receiver:``;
point the server's ``otel_trace_endpoint`` at ``receiver.traces_endpoint`` and ``otel_metric_endpoint`` at
``receiver.metrics_endpoint``.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lamina.testing.processes import free_port

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None  # None for a root span
    kind: str  # "SERVER", "CLIENT", "INTERNAL", ...
    attributes: dict[str, Any]
    status: str  # "UNSET", "OK", "ERROR"
    status_message: str
    start_ns: int
    end_ns: int
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace_id, span_id)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""


@dataclass
class ReceivedMetricPoint:
    name: str
    kind: str  # "sum", "gauge", "histogram", "exponential_histogram", "summary"
    unit: str
    attributes: dict[str, Any]
    value: float | int | None  # sum and gauge points; histograms: None (see count, sum, buckets)
    count: int | None = None
    sum: float | None = None
    bucket_counts: list[int] = field(default_factory=list)
    explicit_bounds: list[float] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as the Python value it carries."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, which)


def attributes_of(key_values: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in key_values}


def decode_traces(body: bytes) -> list[ReceivedSpan]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        kind=_KINDS.get(span.kind, str(span.kind)),
                        attributes=attributes_of(span.attributes),
                        status=_STATUS.get(span.status.code, str(span.status.code)),
                        status_message=span.status.message,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        events=[(e.name, attributes_of(e.attributes)) for e in span.events],
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        resource=resource,
                        scope=scope_spans.scope.name,
                    )
                )
    return spans


def decode_metrics(body: bytes) -> list[ReceivedMetricPoint]:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    points = []
    for resource_metrics in request.resource_metrics:
        resource = attributes_of(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                for point in getattr(metric, kind).data_points:
                    base = {"name": metric.name, "kind": kind, "unit": metric.unit, "resource": resource}
                    attrs = attributes_of(point.attributes)
                    if kind in ("sum", "gauge"):
                        value = getattr(point, point.WhichOneof("value") or "as_int")
                        points.append(ReceivedMetricPoint(attributes=attrs, value=value, **base))
                    elif kind == "histogram":
                        points.append(
                            ReceivedMetricPoint(
                                attributes=attrs,
                                value=None,
                                count=point.count,
                                sum=point.sum,
                                bucket_counts=list(point.bucket_counts),
                                explicit_bounds=list(point.explicit_bounds),
                                **base,
                            )
                        )
                    else:
                        count = getattr(point, "count", None)
                        points.append(
                            ReceivedMetricPoint(
                                attributes=attrs,
                                value=None,
                                count=count,
                                sum=getattr(point, "sum", None),
                                **base,
                            )
                        )
    return points


class OtlpReceiver:
    """An OTLP/HTTP endpoint on 127.0.0.1 that records what it is sent (see the module docstring)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._points: list[ReceivedMetricPoint] = []
        self.posts: dict[str, int] = {"traces": 0, "metrics": 0}  # requests received, answered or not
        self.decode_errors: list[str] = []
        self._delay = 0.0
        self._status = 200
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    @property
    def metrics_endpoint(self) -> str:
        return f"{self.url}/v1/metrics"

    # -- behaviour ------------------------------------------------------------------------------
    def behave(self, *, delay: float = 0.0, status: int = 200) -> None:
        """Answer every export after ``delay`` seconds with ``status`` (200: accepted and recorded;
        anything else: nothing recorded, as a collector that failed)."""
        self._delay, self._status = delay, status

    # -- what arrived ---------------------------------------------------------------------------
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def metric_points(self, name: str | None = None) -> list[ReceivedMetricPoint]:
        with self._lock:
            return [p for p in self._points if name is None or p.name == name]

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self._points.clear()

    def wait_for(self, condition: Callable[[], Any], timeout: float = 20.0, what: str = "spans") -> Any:
        """Poll ``condition()`` until it returns something truthy (returned) or ``timeout`` passes
        (AssertionError listing the span names that did arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                names = sorted({s.name for s in self.spans()})
                raise AssertionError(
                    f"the OTLP receiver did not get the expected {what} within {timeout} s; "
                    f"span names received: {names}; posts: {self.posts}; decode errors: {self.decode_errors}"
                )
            time.sleep(0.05)

    def wait_for_spans(
        self, predicate: Callable[[ReceivedSpan], bool], count: int = 1, timeout: float = 20.0
    ) -> list[ReceivedSpan]:
        """The received spans matching ``predicate`` once there are at least ``count`` of them."""

        def matching() -> list[ReceivedSpan]:
            found = [s for s in self.spans() if predicate(s)]
            return found if len(found) >= count else []

        return self.wait_for(matching, timeout)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans() if s.trace_id == trace_id]

    # -- server ---------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        signal = "traces" if request.path.endswith("/traces") else "metrics"
        self.posts[signal] += 1
        body = await request.read()
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._status != 200:
            return web.Response(status=self._status, text="collector failure injected by the test")
        if body[:2] == b"\x1f\x8b":  # gzip that aiohttp left compressed (it inflates Content-Encoding itself)
            body = gzip.decompress(body)
        try:
            if signal == "traces":
                spans = decode_traces(body)
                with self._lock:
                    self._spans.extend(spans)
            else:
                points = decode_metrics(body)
                with self._lock:
                    self._points.extend(points)
        except Exception as exc:  # recorded for the test's failure message; a 400 as a collector answers
            self.decode_errors.append(f"{signal}: {type(exc).__name__}: {exc}")
            return web.Response(status=400, text=f"undecodable {signal} export: {exc}")
        # An empty Export*ServiceResponse is an empty protobuf message: zero bytes.
        return web.Response(body=b"", content_type="application/x-protobuf")

    def start(self) -> OtlpReceiver:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/traces", self._handle)
            app.router.add_post("/v1/metrics", self._handle)
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
            try:
                loop.run_until_complete(self._runner.setup())
                loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            pending = asyncio.all_tasks(loop)  # handlers a slow collector left waiting
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"otlp-receiver-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise RuntimeError(f"the OTLP receiver could not listen on 127.0.0.1:{self.port}: {errors[0]}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            if self._runner is not None:
                # Close the site and cancel handlers still waiting (a slow collector's) on the loop itself,
                # so none is left pending when the loop stops.
                done = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
                try:
                    done.result(10)
                except Exception:
                    pass
                self._runner = None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
