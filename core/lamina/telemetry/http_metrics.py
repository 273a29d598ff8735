"""HTTP server metrics: a middleware recording every request by route template and status, and the
``GET /metrics`` handler serving the telemetry provider's Prometheus exposition.

The app registers the middleware only when the run config has a telemetry provider (so a server
without one pays nothing); it is the outermost middleware, so the status it records is the one the
client got, error envelopes included. Requests are labelled with the route *template*
(``/v1/models/{model_id}``), never the raw path: a label per model id or file id would be unbounded
cardinality, and Prometheus falls over. A request no route matched has no ``http.route``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from lamina.server.errors import plain_error
from lamina.telemetry import metrics
from lamina.telemetry.http_spans import route_template
from lamina.telemetry.state import active

METRICS_PATH = "/metrics"
# HTTP semconv: any other method is recorded as _OTHER (clients can send any token as a method).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    inst = metrics.instruments()
    if inst is None:
        return await handler(request)
    name = request.method if request.method in KNOWN_METHODS else "_OTHER"
    method = (name,)
    inst.http_active.add(1, method)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away (lamina.server.middlewares says why 499)
        raise
    finally:
        inst.http_active.add(-1, method)
        key = (name, route_template(request), status, str(status) if status >= 500 else None)
        inst.http_duration.record(time.perf_counter() - started, key)


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
