"""HTTP server metrics: every request by route template and status (recorded by the core middleware,
lamina.server.middlewares, with the status the client got, error envelopes included), and the
``GET /metrics`` handler serving the telemetry provider's Prometheus exposition.

Without a telemetry provider (or with metrics off) recording is one ``instruments()`` check. Requests
are labelled with the route *template* (``/v1/models/{model_id}``), never the raw path: a label per
model id or file id would be unbounded cardinality, and Prometheus falls over. A request no route
matched has no ``http.route``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lamina.server.errors import plain_error
from lamina.telemetry import aggregates, metrics
from lamina.telemetry.state import active

METRICS_PATH = "/metrics"
# HTTP semconv: any other method is recorded as _OTHER (clients can send any token as a method).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
HTTP_DURATION_BOUNDS = tuple(float(b) for b in metrics.HTTP_DURATION_BUCKETS)
_METHOD_KEYS = {method: (method,) for method in KNOWN_METHODS}
_OTHER = ("_OTHER",)


def request_started(method: str) -> tuple[Any, tuple[str]] | None:
    """Count a request in flight (the core middleware calls this first); None when metrics are off."""
    inst = metrics.instruments()
    if inst is None:
        return None
    key = _METHOD_KEYS.get(method, _OTHER)  # the in-flight series' key: (method,)
    inst.http_active.add(1, key)
    return inst, key


def request_ended(handle: tuple[Any, tuple[str]], route: str | None, status: int, seconds: float) -> None:
    """The request is answered with ``status`` (the one the client got; 499: it went away first)."""
    inst, method_key = handle
    inst.http_active.add(-1, method_key)
    name = method_key[0]
    key = (name, route, status)
    series = inst._http.get(key) or inst.http_series(key)
    if series is None:  # forwarded to OpenTelemetry instruments
        inst.http_duration.record(seconds, (name, route, status, str(status) if status >= 500 else None))
    else:
        aggregates.observe(((series, HTTP_DURATION_BOUNDS, seconds),))


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics: the active telemetry provider's metrics in Prometheus' text exposition format."""
    settings = active()
    if settings is None:
        return plain_error(
            404,
            "GET /metrics needs telemetry: add a telemetry provider to the run config (providers.telemetry, "
            "provider_type inline::meta-reference) with prometheus: true",
            "not_found_error",
        )
    if settings.prometheus_exposition is None:
        return plain_error(
            404,
            "Prometheus metrics are off: set prometheus: true in the telemetry provider's config "
            "(providers.telemetry[].config.prometheus)",
            "not_found_error",
        )
    body, content_type = await asyncio.get_running_loop().run_in_executor(
        None, settings.prometheus_exposition
    )
    return web.Response(body=body, headers={"Content-Type": content_type})


def install(app: web.Application, open_streams: set[Any]) -> None:
    """Count ``open_streams`` (the app's SSE tasks) as ``lamina.streams.active`` while the app runs."""

    async def observe(app: web.Application):
        stop = metrics.observe_streams(lambda: len(open_streams))
        yield
        stop()

    app.cleanup_ctx.append(observe)
