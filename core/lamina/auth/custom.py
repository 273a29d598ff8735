"""``provider_type: custom``: POST the token and the request to an endpoint of yours, which answers
``{principal, attributes}`` (200) or refuses (any other status). Llama Stack 0.2.12's wire shape."""

from __future__ import annotations

import hashlib
import json
import time

import aiohttp
import structlog
from aiohttp import web

from lamina.auth.config import CustomAuthConfig
from lamina.auth.errors import unauthorized, verifier_down
from lamina.auth.http_client import AuthHttpClient
from lamina.auth.principal import Principal
from lamina.errors import cap_text

log = structlog.get_logger("lamina.auth")
_NOT_FORWARDED = {"authorization", "cookie", "x-llamastack-provider-data"}


class CustomAuth:
    def __init__(self, config: CustomAuthConfig) -> None:
        self.config = config
        self.client = AuthHttpClient()
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def close(self) -> None:
        await self.client.close()

    async def authenticate(self, token: str, request: web.Request) -> Principal:
        params = {k: request.query.getall(k) for k in request.query}  # lists, as Llama Stack's parse_qs
        # The endpoint may decide per path and parameters, so an answer is reused only for the same ones.
        key = hashlib.sha256(
            json.dumps([token, request.method, request.path, sorted(params.items())]).encode()
        ).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        body = {
            "api_key": token,
            "request": {
                "path": request.path,
                "headers": {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED},
                "params": params,
            },
        }
        endpoint = str(self.config.endpoint)
        try:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
            async with self.client.session().post(endpoint, json=body, timeout=timeout) as resp:
                status = resp.status
                answer = await resp.json(content_type=None) if status == 200 else await resp.text()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("auth_endpoint_failed", endpoint=endpoint, error=f"{type(exc).__name__}: {exc}"[:300])
            raise verifier_down("the authentication endpoint") from None
        if status >= 500:
            log.warning("auth_endpoint_failed", endpoint=endpoint, status=status)
            raise verifier_down("the authentication endpoint")
        if status != 200:
            message = ""
            try:
                parsed = json.loads(answer)
                message = parsed.get("message") or "" if isinstance(parsed, dict) else ""
            except ValueError:
                pass
            suffix = f": {cap_text(str(message), 200)}" if message else ""
            raise unauthorized(f"the authentication endpoint refused the token{suffix}")
        if (
            not isinstance(answer, dict)
            or not isinstance(answer.get("principal"), str)
            or not answer["principal"]
        ):
            log.warning("auth_endpoint_bad_answer", endpoint=endpoint)
            raise verifier_down("the authentication endpoint (it answered without a principal)")
        raw = answer.get("attributes") or {}
        attributes = (
            {str(k): [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in raw.items()}
            if isinstance(raw, dict)
            else {}
        )
        principal = Principal(id=answer["principal"], attributes=attributes, via="custom")
        if self.config.cache_ttl_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (principal, now + self.config.cache_ttl_seconds)
        return principal
