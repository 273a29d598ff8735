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

from lamina.telemetry import propagation
from lamina.telemetry.context import attach_span, detach
from lamina.telemetry.spans import tracer

# A load balancer's health probe and Prometheus' scrape arrive every few seconds: a trace each would bury
# the requests (they still count in the HTTP metrics and the access log).
UNTRACED_PATHS = frozenset({"/v1/health", "/metrics"})


def route_template(request: web.Request) -> str | None:
    """The matched route's template (``/v1/files/{file_id}``), or None when no route matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def start(request: web.Request, route: str | None) -> tuple[Span, Any] | None:
    """The request's SERVER span (``route``: its route template), made current; None when telemetry is
    off."""
    tr = tracer()
    if tr is None or request.path in UNTRACED_PATHS:
        return None
    method = request.method
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": request.path}
    if route is not None:
        attributes["http.route"] = route
    span = tr.start_span(
        f"{method} {route}" if route is not None else method,
        context=propagation.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes=attributes,
    )
    return span, attach_span(span)


def end(
    handle: tuple[Span, Any], status: int, request_id: str | None = None, error: str | None = None
) -> None:
    """End the request's span with the status the client got (499: it went away first)."""
    span, token = handle
    detach(token)
    if span.is_recording():
        span.set_attribute("http.response.status_code", status)
        if request_id:
            span.set_attribute("lamina.request_id", request_id)
        if status == 499:
            span.set_attribute("lamina.client_gone", True)
        elif status >= 500:
            # 4xx stays unset on a SERVER span (the client's error, not the server's: HTTP semconv).
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))
    span.end()
