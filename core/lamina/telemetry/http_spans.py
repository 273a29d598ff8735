"""The SERVER span of every HTTP request (opened by the core middleware, lamina.server.middlewares).

Named ``{method} {route}`` after the route template (``POST /v1/inference/chat-completion``,
``GET /v1/models/{model_id}``), as OpenTelemetry's HTTP conventions ask, so that spans of one route
group together whatever ids the paths hold. It continues the caller's trace when the request carries
a ``traceparent``, is the current span while the handler runs (so every span of the request is its
descendant) and ends when the handler has answered: for a stream, after its last event.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from lamina.telemetry import propagation, route_spans
from lamina.telemetry.context import attach_span, detach
from lamina.telemetry.derived import derive
from lamina.telemetry.spans import tracer

# A load balancer's health probe and Prometheus' scrape arrive every few seconds: a trace each would bury
# the requests (they still count in the HTTP metrics and the access log).
UNTRACED_PATHS = frozenset({"/v1/health", "/metrics"})
_SERVER = SpanKind.SERVER


def route_template(request: web.Request) -> str | None:
    """The matched route's template (``/v1/files/{file_id}``), or None when no route matched."""
    route = request.match_info.route
    try:
        return _templates[route]  # two aiohttp property calls fewer a request
    except KeyError:
        resource = route.resource
        if resource is None:  # no route matched (a 404, a 405): a new system route each time, not kept
            return None
        template = _templates[route] = resource.canonical
        return template


# Route -> its template: the app's routes are made once at start-up (a few hundred): a bounded cache.
_templates: dict[Any, str | None] = {}


def start(request: web.Request, route: str | None) -> tuple[Span, Any, str, str, str | None] | None:
    """The request's SERVER span (``route``: its route template), made current; None when telemetry is
    off. Its attributes are given at :func:`end`, with the outcome (:func:`server_attributes`)."""
    tr = tracer()
    if tr is None or request.path in UNTRACED_PATHS:
        return None
    method = request.method
    headers = request.headers
    route_spans.CURRENT.set(None)  # the route's handler names its router call here (route_spans)
    span = tr.start_span(
        f"{method} {route}" if route is not None else method,
        propagation.extract(headers) if propagation.TRACEPARENT in headers else None,
        _SERVER,  # positional, and not read through the Enum class (a Python-level hook): ~0.1 µs
    )
    return span, attach_span(span), method, request.path, route


def server_attributes(
    method: str,
    path: str,
    route: str | None,
    status: int,
    request_id: str | None,
    call: tuple[str, str, str | None] | None = None,
) -> dict[str, Any]:
    """The SERVER span's attributes (lamina.telemetry.derived: maybe built in the export worker); ``call``:
    the router call, ``(api, method, resource id)`` (lamina.telemetry.route_spans)."""
    attrs: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "http.route": route,
        "http.response.status_code": status,
        "lamina.request_id": request_id or None,
    }
    if status == 499:
        attrs["lamina.client_gone"] = True
    elif status >= 500:
        # 4xx stays unset on a SERVER span (the client's error, not the server's: HTTP semconv).
        attrs["error.type"] = str(status)
    if call is not None:
        attrs["lamina.api"], attrs["lamina.method"], attrs["lamina.resource.id"] = call
    return attrs


def end(
    handle: tuple[Span, Any, str, str, str | None],
    status: int,
    request_id: str | None = None,
    error: str | None = None,
) -> None:
    """End the request's span with the status the client got (499: it went away first)."""
    span, token, method, path, route = handle
    detach(token)
    derive(span, "http.server", method, path, route, status, request_id, route_spans.CURRENT.get())
    if status >= 500 and span.is_recording():
        span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))
    span.end()
