"""The aiohttp application factory and runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from lamina.server.keys import ACTIVE_STREAMS, SHUTTING_DOWN, STACK
from lamina.server.middlewares import add_request_id_header, request_middleware
from lamina.server.openapi import build_openapi
from lamina.server.routes import add_api_routes
from lamina.server.sse import close_open_streams
from lamina.specs import import_object
from lamina.stack import Stack

log = structlog.get_logger(__name__)


def create_app(stack: Stack) -> web.Application:
    """Build the app for a stack; the stack starts and stops with the app (cleanup context)."""
    plugin_middlewares = [import_object(m.middleware) for m in stack.pm.middlewares()]
    app = web.Application(
        client_max_size=stack.config.server.max_request_body_bytes,
        middlewares=[request_middleware, *plugin_middlewares],
        handler_args={"max_field_size": 65536},
    )
    app[STACK] = stack
    app[ACTIVE_STREAMS] = set()
    app[SHUTTING_DOWN] = asyncio.Event()
    apis = stack.api_impls()
    add_api_routes(app, apis)
    openapi = build_openapi(apis)

    async def openapi_handler(request: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get("/openapi.json", openapi_handler)
    for route in stack.pm.routes():
        app.router.add_route(route.method, route.path, import_object(route.handler))
    app.cleanup_ctx.append(_stack_lifecycle)
    app.on_shutdown.append(close_open_streams)
    app.on_response_prepare.append(add_request_id_header)
    return app


async def _stack_lifecycle(app: web.Application) -> AsyncIterator[None]:
    stack = app[STACK]
    try:
        await stack.start()
    except BaseException:
        await stack.shutdown()
        raise
    yield
    await stack.shutdown()


def run_server(stack: Stack, *, host: str | None, port: int) -> None:
    app = create_app(stack)
    server = stack.config.server
    ssl_context = None
    if server.tls_certfile and server.tls_keyfile:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=server.tls_cafile)
        ssl_context.load_cert_chain(server.tls_certfile, server.tls_keyfile)
    shown = host or "0.0.0.0"

    def announce(message: str) -> None:
        log.info(
            "serving",
            url=f"http{'s' if ssl_context else ''}://{shown}:{port}",
            distribution=stack.config.image_name,
        )

    web.run_app(
        app,
        host=host,
        port=port,
        ssl_context=ssl_context,
        access_log=None,
        shutdown_timeout=server.shutdown_timeout,
        print=announce,
        handle_signals=True,
        handler_cancellation=True,  # a client that goes away cancels its request's work
    )
