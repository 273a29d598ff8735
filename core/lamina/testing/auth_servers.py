"""A real identity provider on loopback for auth tests: a JWKS endpoint serving keys the test generates
(with rotation), an RFC 7662 introspection endpoint, and a ``custom`` auth endpoint (Llama Stack's wire
shape). An aiohttp server on its own thread, so synchronous tests (and a ``lamina run`` child process)
talk to it over HTTP like to any issuer. Tokens are signed with PyJWT."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://issuer.test"
AUDIENCE = "lamina-tests"
CLIENT_ID, CLIENT_SECRET = "lamina-server", "introspection-secret-123"


class SigningKey:
    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex[:12]
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        data = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class IdentityProvider:
    """``jwks_url``, ``introspection_url``, ``custom_url``; ``keys`` is what the JWKS serves (rotate by
    changing it), ``up = False`` makes every endpoint answer 503, ``fetches`` counts JWKS fetches."""

    def __init__(self) -> None:
        self.keys = [SigningKey()]
        self.up = True
        self.fetches = 0
        self.jwks_token: str | None = None  # when set, the JWKS asks for it as a bearer token
        self.introspections = 0
        self.custom_calls: list[dict[str, Any]] = []
        self.active_tokens: dict[str, dict[str, Any]] = {}  # opaque token -> introspection answer
        self.custom_principals: dict[str, dict[str, Any]] = {}  # token -> {principal, attributes}
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- tokens --------------------------------------------------------------------------------

    def token(self, key: SigningKey | None = None, *, headers: dict | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key.private, algorithm="RS256", headers={"kid": key.kid, **(headers or {})})

    # -- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> IdentityProvider:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/introspect", self._introspect)
        app.router.add_post("/custom", self._custom)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _jwks(self, request: web.Request) -> web.Response:
        if not self.up:
            return web.Response(status=503)
        if self.jwks_token and request.headers.get("Authorization") != f"Bearer {self.jwks_token}":
            return web.Response(status=401)
        self.fetches += 1
        return web.json_response({"keys": [k.jwk() for k in self.keys]})

    async def _introspect(self, request: web.Request) -> web.Response:
        if not self.up:
            return web.Response(status=503)
        form = await request.post()
        basic = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        in_body = form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
        if basic != expected and not in_body:
            return web.json_response({"error": "invalid_client"}, status=401)
        self.introspections += 1
        return web.json_response(self.active_tokens.get(str(form.get("token")), {"active": False}))

    async def _custom(self, request: web.Request) -> web.Response:
        if not self.up:
            return web.Response(status=503)
        body = await request.json()
        self.custom_calls.append(body)
        answer = self.custom_principals.get(body.get("api_key"))
        if answer is None:
            return web.json_response({"message": "unknown key"}, status=401)
        return web.json_response(answer)
