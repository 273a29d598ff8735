"""One pooled aiohttp client per auth provider (JWKS, introspection and custom endpoints)."""

from __future__ import annotations

import ssl

import aiohttp


class AuthHttpClient:
    """Opened lazily on the server's loop; ``close()`` at shutdown."""

    def __init__(self, *, verify_tls: bool = True, cafile: str | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._verify_tls = verify_tls
        self._cafile = cafile

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_arg: ssl.SSLContext | bool = True
            if not self._verify_tls:
                ssl_arg = False
            elif self._cafile:
                ssl_arg = ssl.create_default_context(cafile=self._cafile)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_arg))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
