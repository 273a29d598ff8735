"""Chroma's v2 REST API over Lamina's pooled ``UpstreamClient`` (failures are 502/504 naming the provider).

Adds to ``UpstreamClient.request_json``: large bodies arrive pre-serialised (built off the event
loop by the caller), large responses are parsed off the loop, and a request that meets a
keep-alive connection the server closed (a restarted Chroma) is retried once: every Chroma call
the provider makes is idempotent (upserts, deletes by id, reads, get-or-create).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp

from lamina.errors import BadRequestError, RateLimitError, UpstreamError
from lamina.providers.http_upstream import Timeouts, UpstreamClient

_PARSE_OFF_LOOP = 256 * 1024  # bytes
_JSON = {"Content-Type": "application/json"}


class ChromaClient(UpstreamClient):
    def __init__(
        self,
        provider_id: str,
        url: str,
        *,
        tenant: str = "default_tenant",
        database: str = "default_database",
        token: str | None = None,
        timeouts: Timeouts = Timeouts(),
        max_connections: int = 64,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        super().__init__(
            provider_id,
            url.rstrip("/") + "/api/v2",
            headers=headers,
            timeouts=timeouts,
            max_connections=max_connections,
        )
        self.prefix = f"tenants/{quote(tenant, safe='')}/databases/{quote(database, safe='')}"

    def collections(self, suffix: str = "") -> str:
        return f"{self.prefix}/collections{suffix}"

    async def call(self, method: str, path: str, body: Any = None, *, data: bytes | None = None) -> Any:
        """One request; ``data`` is a JSON body already serialised (for large payloads)."""
        if data is None and body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
        url = self.url(path)
        for attempt in (1, 2):
            try:
                async with self.session.request(method, url, data=data, headers=_JSON) as resp:
                    raw = await resp.read()
                    if resp.status >= 400:
                        raise self._status_error(resp.status, raw, url, resp.headers)
                break
            except (UpstreamError, BadRequestError, RateLimitError):
                raise
            except aiohttp.ServerDisconnectedError as exc:
                if attempt == 2:
                    raise self._transport_error(exc, url) from exc
            except Exception as exc:
                raise self._transport_error(exc, url) from exc
        if not raw:
            return None
        try:
            if len(raw) > _PARSE_OFF_LOOP:
                return await asyncio.to_thread(json.loads, raw)
            return json.loads(raw)
        except ValueError:
            raise UpstreamError(
                self.provider_id, f"{self.where(url)} answered with invalid JSON: {raw[:200]!r}"
            ) from None
