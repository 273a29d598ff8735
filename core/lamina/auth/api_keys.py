"""Lamina API keys: ``lam_<id>_<secret>``, kept as the sha256 of the secret in the metadata kvstore,
created, listed and revoked through ``/v1/admin/api-keys`` by a principal with the admin role.

A key is 32 random bytes, so a plain sha256 (no salt, no slow hash) is enough: nothing can be guessed
by brute force, and the lookup by id plus a constant-time compare keeps the check cheap on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lamina.auth.errors import unauthorized
from lamina.auth.principal import Principal
from lamina.errors import BadRequestError, ForbiddenError, NotFoundError, validation_error
from lamina.request_context import PRINCIPAL
from lamina.storage import KVStore

PREFIX = "lam_"
_KEY = re.compile(r"^lam_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_STORE_PREFIX = "auth:api_keys:"
ADMIN_PATH = "/v1/admin/api-keys"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class CreateApiKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: str = Field(min_length=1, max_length=256, description="Who requests made with the key act as.")
    name: str = Field(default="", max_length=256)
    roles: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)


# An accepted key is trusted this long without reading the store again (a read per request cost ~200 µs
# of the server's CPU). A revocation on this server takes effect at once; on other replicas sharing the
# store, within this many seconds.
ACCEPTED_KEY_SECONDS = 5.0


class ApiKeyStore:
    def __init__(self, store: KVStore) -> None:
        self.store = store
        self._accepted: dict[str, tuple[Principal, str, float]] = {}  # key -> (principal, id, until)

    async def create(self, req: CreateApiKeyRequest, created_by: str) -> tuple[dict[str, Any], str]:
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        attributes = {
            name: values
            for name in ("roles", "teams", "projects", "namespaces")
            if (values := getattr(req, name))
        }
        record = {
            "id": key_id,
            "name": req.name,
            "principal": req.principal,
            "attributes": attributes,
            "created_at": int(time.time()),
            "created_by": created_by,
            "sha256": _digest(secret),
        }
        await self.store.set(_STORE_PREFIX + key_id, json.dumps(record))
        return _public(record), f"{PREFIX}{key_id}_{secret}"

    async def list(self) -> list[dict[str, Any]]:
        items = await self.store.items_with_prefix(_STORE_PREFIX)
        return sorted((_public(json.loads(v)) for _, v in items), key=lambda r: (r["created_at"], r["id"]))

    async def revoke(self, key_id: str) -> bool:
        if await self.store.get(_STORE_PREFIX + key_id) is None:
            return False
        await self.store.delete(_STORE_PREFIX + key_id)
        self._accepted = {k: v for k, v in self._accepted.items() if v[1] != key_id}
        return True

    async def authenticate(self, token: str) -> Principal:
        hit = self._accepted.get(token)
        if hit is not None and time.monotonic() < hit[2]:
            return hit[0]
        match = _KEY.match(token)
        if match is None:
            raise unauthorized("the API key is malformed (expected lam_<16 hex>_<43 characters>)")
        raw = await self.store.get(_STORE_PREFIX + match.group(1))
        expected = json.loads(raw)["sha256"] if raw else "0" * 64
        matches = hmac.compare_digest(expected, _digest(match.group(2)))  # constant time
        if raw is None or not matches:
            raise unauthorized("the API key is unknown or revoked")
        record = json.loads(raw)
        principal = Principal(id=record["principal"], attributes=record["attributes"], via="api_key")
        if len(self._accepted) >= 10_000:
            self._accepted.clear()
        self._accepted[token] = (principal, record["id"], time.monotonic() + ACCEPTED_KEY_SECONDS)
        return principal


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "sha256"}


def _admin(request: web.Request, admin_role: str) -> Principal:
    principal = PRINCIPAL.get()
    if principal is None or not principal.has_role(admin_role):
        raise ForbiddenError(
            f"managing API keys needs the {admin_role!r} role (server.auth.admin_role); the caller "
            f"{principal.id if principal else '(anonymous)'!r} does not have it"
        )
    return principal


def admin_routes(keys_of, admin_role: str) -> list[web.RouteDef]:
    """The admin routes; ``keys_of(request)`` gives the server's ApiKeyStore."""

    async def create(request: web.Request) -> web.Response:
        admin = _admin(request, admin_role)
        try:
            body = await request.json()
        except ValueError:
            raise BadRequestError('the body is not JSON; send {"principal": "...", "roles": [...]}') from None
        try:
            req = CreateApiKeyRequest.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        record, key = await keys_of(request).create(req, admin.id)
        # The key itself is shown this once: only its hash is kept.
        return web.json_response({**record, "key": key}, status=201)

    async def list_keys(request: web.Request) -> web.Response:
        _admin(request, admin_role)
        return web.json_response({"data": await keys_of(request).list()})

    async def revoke(request: web.Request) -> web.Response:
        _admin(request, admin_role)
        key_id = request.match_info["key_id"]
        if not await keys_of(request).revoke(key_id):
            raise NotFoundError(f"no API key {key_id[:64]!r}; GET {ADMIN_PATH} lists them", param="key_id")
        return web.json_response({"id": key_id, "deleted": True})

    return [
        web.post(ADMIN_PATH, create),
        web.get(ADMIN_PATH, list_keys, allow_head=False),
        web.delete(ADMIN_PATH + "/{key_id}", revoke),
    ]
