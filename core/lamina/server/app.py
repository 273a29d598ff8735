"""The aiohttp application factory and runner."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from lamina.access import owners
from lamina.access.guard import AccessGuard, owner_in
from lamina.access.owners import OwnerStore
from lamina.access.policy import Owner, parse_policy
from lamina.auth.api_keys import ApiKeyStore, admin_routes
from lamina.auth.config import AuthConfig
from lamina.auth.middleware import Authenticator, auth_middleware
from lamina.config import DEFAULT_HOST
from lamina.errors import ForbiddenError, LaminaError
from lamina.quotas.middleware import quota_lifecycle, quota_middleware
from lamina.redaction import register_secrets, secrets_in
from lamina.request_context import PRINCIPAL
from lamina.server import gc_tuning
from lamina.server.keys import (
    ACCESS_GUARD,
    ACTIVE_STREAMS,
    AUTHENTICATOR,
    CUT_REQUESTS,
    IN_FLIGHT,
    SHUTTING_DOWN,
    STACK,
)
from lamina.server.middlewares import add_request_id_header, request_middleware
from lamina.server.openapi import build_openapi
from lamina.server.protocol_log import ProtocolLogger
from lamina.server.routes import add_api_routes
from lamina.server.shutdown import AIOHTTP_BACKSTOP_SECONDS, drain_middleware, drain_requests, exit_promptly
from lamina.specs import Api, ResourceType, RouteSpec, import_object
from lamina.stack import Stack
from lamina.telemetry.http_metrics import METRICS_PATH, metrics_handler
from lamina.telemetry.http_metrics import install as install_http_metrics

log = structlog.get_logger(__name__)


def create_app(stack: Stack) -> web.Application:
    """Build the app for a stack; the stack starts and stops with the app (cleanup context)."""
    plugin_middlewares = [import_object(m.middleware) for m in stack.pm.middlewares()]
    # The run config's provider keys are masked wherever they would show in a log line or a span.
    register_secrets(secrets_in(stack.config.model_dump(mode="json", include={"providers", "server"})))
    auth_config = stack.config.server.auth
    authenticator = Authenticator(auth_config) if auth_config is not None else None
    quota = stack.config.server.quota
    app = web.Application(
        client_max_size=stack.config.server.max_request_body_bytes,
        middlewares=[
            request_middleware,
            drain_middleware,
            *([auth_middleware(authenticator)] if authenticator is not None else []),
            *([quota_middleware(quota)] if quota is not None else []),  # after auth: counts per principal
            *plugin_middlewares,
        ],
        # A request the HTTP parser refuses is logged in one line, without its raw bytes (protocol_log).
        handler_args={"max_field_size": 65536, "logger": ProtocolLogger()},
    )
    app[STACK] = stack
    app[ACTIVE_STREAMS] = set()
    app[SHUTTING_DOWN] = asyncio.Event()
    app[IN_FLIGHT] = set()
    app[CUT_REQUESTS] = set()
    apis = stack.api_impls()
    # With server.auth, every route is checked against the access policy (Lamina's default without one).
    guard = AccessGuard(parse_policy(auth_config.access_policy)) if auth_config is not None else None
    add_api_routes(app, apis, guard, stack.config.server.request_bounds)
    openapi = build_openapi(apis)

    async def openapi_handler(request: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get("/openapi.json", openapi_handler)
    app.router.add_get(METRICS_PATH, metrics_handler)  # 404 naming the config field while telemetry is off
    for route in stack.pm.routes():
        app.router.add_route(route.method, route.path, _plugin_handler(route, auth_config))
        if route.access == "open" and authenticator is not None:
            authenticator.open_routes.add((route.method, route.path))
    app.cleanup_ctx.append(_stack_lifecycle)
    if quota is not None:
        app.cleanup_ctx.append(quota_lifecycle(quota))
    if authenticator is not None:
        app[AUTHENTICATOR] = authenticator
        if authenticator.api_keys_on:
            app.router.add_routes(admin_routes(_api_keys, auth_config.admin_role))
        app.cleanup_ctx.append(_auth_lifecycle)
    if guard is not None:
        app[ACCESS_GUARD] = guard  # for plugin routes' handlers (lamina.access.checks)
        app.cleanup_ctx.append(_owners_lifecycle(guard))
    if stack.config.providers.get("telemetry"):  # without a telemetry provider, nothing to count
        install_http_metrics(app, app[ACTIVE_STREAMS])
    app.on_shutdown.append(drain_requests)  # the grace period (server.shutdown_timeout) is spent here
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


def _api_keys(request: web.Request) -> ApiKeyStore:
    keys = request.app[AUTHENTICATOR].keys
    assert keys is not None, "the stack (and its metadata store) starts before requests are served"
    return keys


async def _auth_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """API keys live in the stack's metadata store, open once the stack has started (the context
    before this one); the providers' HTTP clients close at shutdown."""
    authenticator = app[AUTHENTICATOR]
    authenticator.keys = ApiKeyStore(app[STACK].store)
    yield
    await authenticator.close()


def _owners_lifecycle(guard: AccessGuard):
    """Owner records live in the stack's metadata store, open once the stack has started."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        stack = app[STACK]
        guard.owners = OwnerStore(stack.store)
        if stack.jobs is not None:
            guard.own_records["job"] = _job_owner(stack.jobs)
        if (inference := stack.routers.get(Api.inference)) is not None:
            guard.own_records["chat_completion"] = _completion_owner(inference)
            guard.owned_in_row.add("chat_completion")

        async def registered(kind: str, resource_id: str) -> bool:
            return kind in REGISTERED_KINDS and await stack.registry.get(kind, resource_id) is not None

        guard.registered = registered
        if ResourceType.tool_group in stack.tables:

            async def tool_group_of(name: str) -> str | None:
                try:
                    _, group = await stack.tool_groups.resolve_tool(name)
                except LaminaError:  # no such tool: the route answers that itself
                    return None
                return group.identifier

            guard.tool_group_of = tool_group_of
            stack.tool_groups.usable = functools.partial(guard.caller_may_read, "tool_group")
        owners.activate(guard.owners)
        try:
            yield
        finally:
            owners.activate(None)

    return lifecycle


REGISTERED_KINDS = frozenset(t.value for t in ResourceType)


def _job_owner(jobs):
    async def owner(job_id: str) -> Owner | None:
        try:
            job = await jobs.get(job_id)
        except LaminaError:  # no such job
            return None
        return owner_in(job.owner)

    return owner


def _plugin_handler(route: RouteSpec, auth: AuthConfig | None):
    """A plugin route's handler; an ``admin`` one refuses callers without the admin role (with auth)."""
    handler = import_object(route.handler)
    if route.access != "admin" or auth is None:
        return handler
    role = auth.admin_role

    async def admin_only(request: web.Request) -> web.StreamResponse:
        principal = PRINCIPAL.get()
        if principal is None or not principal.has_role(role):
            raise ForbiddenError(
                f"{route.method} {route.path} needs the {role!r} role (server.auth.admin_role); the caller "
                f"{principal.id if principal else '(anonymous)'!r} does not have it"
            )
        return await handler(request)

    return admin_only


def _completion_owner(inference):
    async def owner(completion_id: str) -> Owner | None:
        return owner_in(await inference.completion_owner(completion_id))

    return owner


def is_loopback(host: str) -> bool:
    """True for an address (or ``localhost``) that only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def run_server(stack: Stack, *, host: str | None, port: int) -> None:
    app = create_app(stack)
    server = stack.config.server
    host = host or DEFAULT_HOST
    ssl_context = None
    if server.tls_certfile and server.tls_keyfile:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=server.tls_cafile)
        ssl_context.load_cert_chain(server.tls_certfile, server.tls_keyfile)
        if server.tls_cafile:  # as in Llama Stack: a CA file means clients must present a certificate
            ssl_context.verify_mode = ssl.CERT_REQUIRED
    if not is_loopback(host) and not server.auth:
        # Without server.auth anyone who can reach this address can use every route, including file
        # uploads and model registration.
        log.warning(
            "server_exposed_without_auth",
            host=host,
            port=port,
            hint=f"set server.auth (docs/security.md), or bind {DEFAULT_HOST} (the default)",
        )

    # A wildcard bind is reached on loopback from inside (the server calling its own routes).
    own_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    own_host = f"[{own_host}]" if ":" in own_host else own_host
    stack.server_url = f"http{'s' if ssl_context else ''}://{own_host}:{port}"

    def announce(message: str) -> None:
        log.info(
            "serving",
            url=f"http{'s' if ssl_context else ''}://{host}:{port}",
            distribution=stack.config.image_name,
        )

    async def tune_gc(app: web.Application) -> None:  # after the stack's start (the first on_startup)
        gc_tuning.apply(server.gc)

    app.on_startup.append(tune_gc)
    web.run_app(
        app,
        host=host,
        port=port,
        ssl_context=ssl_context,
        access_log=None,
        # drain_requests has already given in-flight requests the grace period and cut the rest.
        shutdown_timeout=AIOHTTP_BACKSTOP_SECONDS,
        print=announce,
        handle_signals=True,
        handler_cancellation=True,  # a client that goes away cancels its request's work
    )
    exit_promptly()
