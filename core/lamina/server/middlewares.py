"""The core middleware: request id and log context, provider data, error rendering, access log."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import time

import structlog
from aiohttp import web

from lamina.errors import BadRequestError, LaminaError
from lamina.redaction import REQUEST_SECRETS, add_request_secrets
from lamina.request_context import (
    INTERACTIVE,
    PROVIDER_DATA,
    PROVIDER_DATA_HEADER,
    REQUEST_ID,
    VALIDATED_PROVIDER_DATA,
)
from lamina.server.errors import error_response, plain_error
from lamina.server.keys import REQUEST_ID_KEY, STACK
from lamina.telemetry import http_metrics, http_spans, state

log = structlog.get_logger("lamina.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Request ids: a random prefix per process and a counter, 32 hex digits like a uuid4's hex. Unique
# without a getrandom() system call per request (uuid4 makes one: a few µs on every request).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


@web.middleware
async def request_middleware(request: web.Request, handler):
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if incoming and _SAFE_ID.match(incoming) else new_request_id()
    request[REQUEST_ID_KEY] = request_id
    REQUEST_ID.set(request_id)
    REQUEST_SECRETS.set(())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    gone: dict[str, bool] = {}  # the access log's client_gone, only when it is true
    failure: str | None = None  # a 5xx's message, for the request's span
    # Telemetry (traced, counted: None when off): the request's span and its HTTP metrics.
    route = http_spans.route_template(request) if state._active is not None else None  # active(), inline
    traced = http_spans.start(request, route)
    counted = http_metrics.request_started(request.method)
    INTERACTIVE.started()
    try:
        _set_provider_data(request)
        response = await handler(request)
        status = response.status
        return response
    except LaminaError as exc:
        status = exc.status
        if exc.status >= 500:
            failure = exc.message
            log.warning("request_failed", status=exc.status, error=exc.message)
        return error_response(exc)
    except web.HTTPException as exc:
        status = exc.status
        if exc.status == 404:
            return plain_error(
                404,
                f"no route {request.method} {request.path}; GET /v1/inspect/routes lists "
                f"the routes this server serves",
                "not_found_error",
            )
        if exc.status == 405:
            return plain_error(405, f"{request.method} is not allowed on {request.path}")
        if exc.status == 413:
            return plain_error(
                413,
                f"request body too large (limit {request.app._client_max_size} bytes, "
                f"server.max_request_body_bytes)",
            )
        return plain_error(exc.status, exc.reason or exc.text or "error")
    except asyncio.CancelledError:
        # aiohttp cancels the handler of a client that went away (handler_cancellation): nothing
        # failed here and nobody reads an answer. nginx's 499 ("client closed request") says so;
        # a 500 would read as a server error. (A handler cancelled with its client still there, at
        # the end of a shutdown's drain, keeps the 500.)
        if request.transport is None or request.transport.is_closing():
            status, gone = 499, {"client_gone": True}
        raise
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
        log.exception("request_crashed", method=request.method, path=request.path)
        return plain_error(
            500, f"internal server error (request id {request_id}); see the server log", "server_error"
        )
    finally:
        INTERACTIVE.ended()
        seconds = time.perf_counter() - started
        if traced is not None:
            http_spans.end(traced, status, request_id, failure)
        if counted is not None:
            http_metrics.request_ended(counted, route, status, seconds)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            ms=round(seconds * 1000, 2),
            **gone,
        )


def _set_provider_data(request: web.Request) -> None:
    """Parse ``X-LlamaStack-Provider-Data`` and validate it with every configured provider's model
    (``lamina.request_context``); a malformed header is a 400 before any handler runs."""
    PROVIDER_DATA.set(None)
    VALIDATED_PROVIDER_DATA.set(None)
    raw = request.headers.get(PROVIDER_DATA_HEADER)
    if not raw:
        return
    add_request_secrets([raw])
    example = '{"openai_api_key": "..."}'
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequestError(
            f"the {PROVIDER_DATA_HEADER} header is not valid JSON ({exc}); send a JSON object such as "
            f"{example}",
            param=PROVIDER_DATA_HEADER,
        ) from None
    if not isinstance(data, dict):
        raise BadRequestError(
            f"the {PROVIDER_DATA_HEADER} header must be a JSON object, such as {example}; got a "
            f"{type(data).__name__}",
            param=PROVIDER_DATA_HEADER,
        )
    add_request_secrets(_string_leaves(data))  # every value: keys, tokens, and URLs that may embed them
    PROVIDER_DATA.set(data)
    VALIDATED_PROVIDER_DATA.set(request.app[STACK].validate_provider_data(data))


def _string_leaves(value) -> list:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _string_leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _string_leaves(v)]
    return [value] if isinstance(value, str) else []


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streaming or not, carries its request id."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id:
        response.headers["X-Request-ID"] = request_id
