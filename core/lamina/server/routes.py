"""Generate aiohttp handlers from route declarations: parse, validate, call, render."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from lamina import fast_json
from lamina.access.guard import AccessGuard
from lamina.apis.binary import BinaryResponse
from lamina.apis.webmethod import RouteDecl, routes_of
from lamina.errors import BadRequestError, PayloadTooLargeError, validation_error
from lamina.quotas.bounds import RequestBounds, request_check
from lamina.server.multipart import call_multipart, send_binary
from lamina.server.sse import stream_response
from lamina.telemetry import route_spans
from lamina.telemetry.state import active

log = structlog.get_logger(__name__)
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_BODY_METHODS = ("POST", "PUT", "PATCH")
# Deeper JSON is refused before any model sees it: no API nests this deep, and deeper documents
# exhaust the recursion of json, pydantic and json.dumps (a RecursionError, formerly a 500).
MAX_JSON_DEPTH = 64


async def read_json_body(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLargeError(
            f"request body is larger than the server's limit of {request.app._client_max_size} bytes "
            f"(server.max_request_body_bytes in the run config); send a smaller body",
            actual_size=getattr(exc, "actual_size", None),
        ) from None
    if not raw.strip():
        return {}
    too_deep = False
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequestError(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:  # nested far deeper than MAX_JSON_DEPTH
        too_deep = True
    if too_deep or _depth_exceeds(data, MAX_JSON_DEPTH):
        raise BadRequestError(
            f"the request body is nested too deep: JSON objects and arrays may be nested at most "
            f"{MAX_JSON_DEPTH} levels deep; flatten the body"
        )
    if not isinstance(data, dict):
        raise BadRequestError(f"the request body must be a JSON object, got {type(data).__name__}")
    return data


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether arrays and objects in ``data`` nest more than ``limit`` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def make_handler(
    decl: RouteDecl,
    method: Callable[..., Awaitable[Any]],
    protocol: type | None = None,
    guard: AccessGuard | None = None,
    bounds: RequestBounds | None = None,
) -> Handler:
    if guard is not None:
        if decl.access is None:
            raise RuntimeError(
                f"route {decl.method} {decl.path} ({decl.name}) declares no access (webmethod access=...): "
                "access control cannot check it; declare what it does (lamina.access.declarations)"
            )
        method = guard.wrap(decl.access, method, takes_request=decl.request is not None)
    path_params = decl.path_params()
    has_body = decl.method in _BODY_METHODS
    model = decl.request
    check_bounds = request_check(model, bounds)  # server.request_bounds on the fields that multiply work
    # The router call, named for the request's span while telemetry is on (lamina.telemetry.route_spans).
    route_call = route_spans.RouteCall(decl, protocol, path_params)

    async def named(*args: Any) -> Any:
        """``method``, naming the call first (a multipart upload's way; a JSON request's is in _call)."""
        route_call.note(args[0] if args else None)
        return await method(*args)

    async def handler(request: web.Request) -> web.StreamResponse:
        naming = active() is not None
        if decl.multipart and model is not None:
            path_data = {name: request.match_info[name] for name in path_params}
            result = await call_multipart(request, model, named if naming else method, path_data)
        else:
            result = await _call(request, naming)
        if isinstance(result, BinaryResponse):
            return await send_binary(request, result, decl.status)
        if hasattr(result, "__anext__"):
            return await stream_response(request, result, openai=decl.openai)
        return json_response(result, decl.status)

    async def _call(request: web.Request, naming: bool) -> Any:
        data: dict[str, Any] = await read_json_body(request) if has_body else _query(request)
        for name in path_params:
            data[name] = request.match_info[name]
        if model is None:
            if naming:
                route_call.note(None)
            return await method()
        try:
            parsed = model.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc, "request body" if has_body else "request") from None
        if check_bounds is not None:
            check_bounds(parsed)
        if naming:
            route_call.note(parsed)
        if decl.cancellable:
            return await method(parsed)
        return await finish_despite_disconnect(method(parsed), decl.name)

    handler.__name__ = decl.name
    return handler


async def finish_despite_disconnect(call: Awaitable[T], name: str) -> T:
    """Run a write to its end even if aiohttp cancels the handler because the client went away.

    The server cancels handlers of departed clients (``handler_cancellation``) so that generations
    stop; a registration, insert or delete cut half-way would instead leave part of it done.
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            log.info("finishing_after_client_left", route=name)
            task.add_done_callback(_log_orphan_failure)
        raise


def _log_orphan_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.warning("write_failed_after_client_left", error=f"{type(exc).__name__}: {exc}")


def json_response(result: Any, status: int = 200) -> web.Response:
    if isinstance(result, BaseModel):
        body = result.model_dump_json().encode()
    else:
        body = fast_json.dumps(result)  # a dict answer: an upstream's, or OpenAI embeddings (floats)
    return web.Response(body=body, status=status, content_type="application/json")


def _query(request: web.Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        out[key] = values if len(values) > 1 else values[0]
    return out


def add_api_routes(
    app: web.Application,
    apis: list[tuple[type, Any, list[str]]],
    guard: AccessGuard | None = None,
    bounds: RequestBounds | None = None,
) -> list[RouteDecl]:
    """Register every declared route of every served API (checked by ``guard`` when access control is
    on; ``bounds``, ``server.request_bounds``, limits the fields that multiply a request's work);
    returns the declarations."""
    seen: dict[tuple[str, str], str] = {}
    decls = []
    for protocol, impl, _types in apis:
        for decl in routes_of(protocol):
            method = getattr(impl, decl.name)
            handler = make_handler(decl, method, protocol, guard, bounds)
            for path in decl.paths:
                key = (decl.method, path)
                if key in seen:
                    raise RuntimeError(
                        f"route {decl.method} {path} declared twice ({seen[key]} and {decl.name})"
                    )
                seen[key] = decl.name
                app.router.add_route(decl.method, path, handler)
            decls.append(decl)
    return decls
