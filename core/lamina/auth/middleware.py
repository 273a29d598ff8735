"""The auth middleware: every request but the open paths carries ``Authorization: Bearer <token>``,
checked by the configured provider (or as a Lamina API key); the principal goes to ``PRINCIPAL`` and
into the log context (its id, never the token)."""

from __future__ import annotations

import hashlib
import hmac

import structlog
from aiohttp import web

from lamina.auth.api_keys import PREFIX as API_KEY_PREFIX
from lamina.auth.api_keys import ApiKeyStore
from lamina.auth.config import AuthConfig, AuthProviderType
from lamina.auth.custom import CustomAuth
from lamina.auth.errors import unauthorized
from lamina.auth.oauth2_token import OAuth2TokenAuth
from lamina.auth.principal import Principal
from lamina.errors import UnauthorizedError
from lamina.quotas.middleware import count_failed_authentication
from lamina.redaction import add_request_secrets
from lamina.request_context import PRINCIPAL
from lamina.telemetry.context import current_span
from lamina.telemetry.http_spans import route_template

log = structlog.get_logger("lamina.auth")
MAX_TOKEN_CHARS = 16384


class Authenticator:
    """Who sent a request, per ``server.auth``. ``keys`` (the API key store) is attached when the
    server's metadata store is open."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        provider_config = config.provider_config()
        self.provider: OAuth2TokenAuth | CustomAuth | None = None
        self._bootstrap: bytes | None = None
        if config.provider_type is AuthProviderType.oauth2_token:
            self.provider = OAuth2TokenAuth(provider_config)
        elif config.provider_type is AuthProviderType.custom:
            self.provider = CustomAuth(provider_config)
        elif provider_config.bootstrap_admin_key:
            self._bootstrap = hashlib.sha256(provider_config.bootstrap_admin_key.encode()).digest()
        self.api_keys_on = config.api_keys or config.provider_type is AuthProviderType.api_keys
        self.open_paths = frozenset(config.open_paths)
        # (method, path template) of the plugin routes declared ``access: open`` (lamina_routes)
        self.open_routes: set[tuple[str, str]] = set()
        self.keys: ApiKeyStore | None = None

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()

    async def authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization")
        if not header:
            raise unauthorized(
                "this server needs authentication: send the header Authorization: Bearer <token>", error=None
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if token:
            add_request_secrets([token])
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("the Authorization header must read 'Bearer <token>'", error="invalid_request")
        if len(token) > MAX_TOKEN_CHARS:
            raise unauthorized(
                f"the bearer token is longer than {MAX_TOKEN_CHARS} characters", error="invalid_request"
            )
        if self._bootstrap is not None and hmac.compare_digest(
            self._bootstrap, hashlib.sha256(token.encode()).digest()
        ):
            return Principal(id="admin", attributes={"roles": [self.config.admin_role]}, via="bootstrap")
        if token.startswith(API_KEY_PREFIX) and self.api_keys_on and self.keys is not None:
            return await self.keys.authenticate(token)
        if self.provider is None:
            raise unauthorized("the API key is unknown or revoked")
        return await self.provider.authenticate(token, request)


def auth_middleware(authenticator: Authenticator):
    @web.middleware
    async def middleware(request: web.Request, handler):
        open_routes = authenticator.open_routes
        if request.path in authenticator.open_paths or (
            open_routes and (request.method, route_template(request)) in open_routes
        ):
            PRINCIPAL.set(None)
            return await handler(request)
        try:
            principal = await authenticator.authenticate(request)
        except UnauthorizedError:
            await count_failed_authentication(request)  # a 429 once the address has failed too often
            raise
        PRINCIPAL.set(principal)
        structlog.contextvars.bind_contextvars(principal=principal.id)
        span = current_span()
        if span.is_recording():  # the request's SERVER span says who called (OpenTelemetry's enduser.id)
            span.set_attribute("enduser.id", principal.id)
        return await handler(request)

    return middleware
