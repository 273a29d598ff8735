"""A pooled HTTP client for remote providers that turns upstream failures into 502/504.

One client per provider, opened in ``initialize`` and closed in ``shutdown``. Every error names
the provider and the endpoint (``chat/completions``), so a user knows which backend failed and why;
the upstream's URL goes only to the server log (``upstream_failed``): a client must not learn the
addresses of the services behind Lamina. A call that fails before the upstream answered (429, 502,
503, 504, a refused or dropped connection) is tried again with backoff, honouring ``Retry-After``
(``lamina.providers.upstream_retry``; each retry is logged as ``upstream_retry``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import structlog
from pydantic_core import from_json

from lamina import fast_json
from lamina.errors import BadRequestError, LaminaError, RateLimitError, UpstreamError, UpstreamTimeoutError
from lamina.providers.upstream_retry import RetryPolicy, next_wait, retries_on
from lamina.telemetry import propagation

log = structlog.get_logger(__name__)
T = TypeVar("T")
_JSON_BODY = {"Content-Type": "application/json"}


def _encode(body: Any, headers: dict[str, str] | None) -> tuple[bytes | None, dict[str, str] | None]:
    """The request body as JSON bytes (lamina.fast_json: several times faster than aiohttp's
    json.dumps) and the headers to send with it, the caller's trace context among them (telemetry on)."""
    headers = propagation.inject(headers)
    if body is None:
        return None, headers
    return fast_json.dumps(body), {**headers, **_JSON_BODY} if headers else _JSON_BODY


def loads(raw: bytes) -> Any:
    """Parse an upstream's JSON: pydantic-core's parser (about three times faster than json.loads on
    a chat completion), with json.loads deciding whatever it refuses (an escaped lone surrogate, a
    byte-order mark), so exactly what json.loads accepts is accepted; ValueError otherwise."""
    try:
        return from_json(raw)
    except ValueError:
        return json.loads(raw)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 300.0  # between bytes: bounds a stalled stream, not a long generation


class UpstreamClient:
    def __init__(
        self,
        provider_id: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeouts: Timeouts = Timeouts(),
        max_connections: int = 256,
        verify_tls: bool | str = True,
        retries: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.provider_id = provider_id
        self.base_url = base_url.rstrip("/")
        self.headers = headers or {}
        self.timeouts = timeouts
        self.retries = retries
        self.max_connections = max_connections
        self.verify_tls = verify_tls
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        ssl: Any = None
        if self.verify_tls is False:
            ssl = False
        elif isinstance(self.verify_tls, str):
            import ssl as ssl_mod

            ssl = ssl_mod.create_default_context(cafile=self.verify_tls)
        connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=ssl, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.timeouts.connect, sock_read=self.timeouts.read
            ),
            raise_for_status=False,
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamError(
                self.provider_id, "the provider is not started (initialize() was not awaited)"
            )
        return self._session

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def where(self, url: str) -> str:
        """How client-facing errors name an upstream URL: its path below the base URL, never the host."""
        path = url.removeprefix(self.base_url).lstrip("/").split("?", 1)[0]
        return f"upstream endpoint {path or '/'}"

    # -- requests ------------------------------------------------------------------------------

    async def retrying(self, url: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, tried again while it fails in a way worth retrying (``upstream_retry``), within
        ``self.retries``; time spent is also bounded by the read timeout. The last failure is raised as
        it was, saying how many attempts were made."""
        policy = self.retries
        if policy.max_retries <= 0 or not retries_on():
            return await attempt()
        budget = min(policy.max_seconds, self.timeouts.read)
        bounded = RetryPolicy(policy.max_retries, budget, policy.base_delay, policy.max_delay)
        started = time.monotonic()
        retry = 0
        while True:
            try:
                return await attempt()
            except LaminaError as exc:
                wait = next_wait(exc, retry, time.monotonic() - started, bounded)
                if wait is None:
                    if retry:
                        exc.message = f"{exc.message} (gave up after {retry + 1} attempts)"
                    raise
                log.warning(
                    "upstream_retry",
                    provider_id=self.provider_id,
                    endpoint=self.where(url),
                    attempt=retry + 1,
                    status=getattr(exc, "upstream_status", None) or exc.status,
                    error=exc.message[:300],
                    wait_seconds=round(wait, 3),
                )
                retry += 1
                await asyncio.sleep(wait)

    async def request_json(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        url = self.url(path)
        data, headers = _encode(body, headers)

        async def attempt() -> bytes:
            try:
                async with self.session.request(method, url, data=data, headers=headers) as resp:
                    raw = await resp.read()
                    if resp.status >= 400:
                        raise self._status_error(resp.status, raw, url, resp.headers)
                    return raw
            except (UpstreamError, BadRequestError, RateLimitError):
                raise
            except Exception as exc:
                raise self._transport_error(exc, url) from exc

        raw = await self.retrying(url, attempt)
        try:
            return loads(raw)
        except ValueError:
            raise UpstreamError(
                self.provider_id, f"{self.where(url)} answered with invalid JSON: {_snippet(raw)}"
            ) from None

    async def stream_sse(
        self, path: str, body: Any, headers: dict[str, str] | None = None, *, expect_done: bool = True
    ) -> AsyncIterator[Any]:
        """POST and yield each server-sent event's JSON payload, as it arrives, until ``[DONE]``."""
        url = self.url(path)
        data, headers = _encode(body, headers)

        async def attempt() -> aiohttp.ClientResponse:
            # Retried (``retrying``) only up to here: once the upstream answers 2xx, its first byte may
            # reach the client, and a stream cannot be taken back.
            try:
                resp = await self.session.post(url, data=data, headers=headers)
            except Exception as exc:
                raise self._transport_error(exc, url) from exc
            if resp.status >= 400:
                try:
                    raw = await resp.read()
                except Exception:
                    raw = b""
                finally:
                    resp.release()
                raise self._status_error(resp.status, raw, url, resp.headers)
            return resp

        resp = await self.retrying(url, attempt)
        async with resp:
            data_lines: list[bytes] = []
            done = False
            try:
                async for line in resp.content:
                    line = line.rstrip(b"\r\n")
                    if line.startswith(b"data:"):
                        data_lines.append(line[5:].lstrip())
                        continue
                    if line or not data_lines:
                        continue  # comments, event:/id: fields, keep-alives
                    payload = b"\n".join(data_lines)
                    data_lines = []
                    if payload == b"[DONE]":
                        done = True
                        break
                    yield self._parse_event(payload, url)
                if data_lines and not done:
                    payload = b"\n".join(data_lines)
                    if payload == b"[DONE]":
                        done = True
                    else:
                        yield self._parse_event(payload, url)
            except (UpstreamError, BadRequestError):
                raise
            except Exception as exc:
                raise self._transport_error(exc, url, streaming=True) from exc
            if expect_done and not done:
                where = self.where(url)
                raise UpstreamError(self.provider_id, f"the stream from {where} ended before [DONE]")

    def _parse_event(self, payload: bytes, url: str) -> Any:
        try:
            event = loads(payload)
        except ValueError:
            where = self.where(url)
            raise UpstreamError(
                self.provider_id, f"{where} sent a stream event that is not JSON: {_snippet(payload)}"
            ) from None
        if isinstance(event, dict) and "error" in event and not event.get("choices"):
            err = event["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise UpstreamError(self.provider_id, f"{self.where(url)} reported an error mid-stream: {msg}")
        return event

    # -- error mapping -------------------------------------------------------------------------

    def _transport_error(self, exc: BaseException, url: str, streaming: bool = False) -> UpstreamError:
        # The exception's text names the host and port: it goes to the server log, not to the client.
        error = f"{type(exc).__name__}: {exc}"
        log.warning("upstream_failed", provider_id=self.provider_id, url=url, error=error)
        where = self.where(url)
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            what = "stopped sending" if streaming else "did not answer"
            return UpstreamTimeoutError(
                self.provider_id,
                f"{where} {what} within the timeout (connect {self.timeouts.connect}s, read "
                f"{self.timeouts.read}s; raise the provider's `timeout` in the run config if it is slow)",
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            # os_error's own text names the address ("Connect call failed ('10.0.0.5', 8000)"): only the
            # errno's meaning reaches the client.
            code = getattr(exc.os_error, "errno", None)
            if isinstance(exc.os_error, socket.gaierror):  # its errno is a resolver code (-2), no strerror
                reason = "its host name does not resolve"
            else:
                reason = os.strerror(code) if code else type(exc.os_error).__name__
            return UpstreamError(
                self.provider_id,
                f"cannot connect to its upstream ({reason}). Is the server running? Check the provider's "
                f"`url` (the server log's upstream_failed event has the address tried).",
            )
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            return UpstreamError(
                self.provider_id, f"{where} closed the connection mid-response ({type(exc).__name__})"
            )
        return UpstreamError(self.provider_id, f"request to {where} failed: {type(exc).__name__}")

    def _status_error(self, status: int, raw: bytes, url: str, headers: Any) -> LaminaError:
        err = self._status_error_for(status, raw, url, headers)
        # What a retry waits for (lamina.providers.upstream_retry); a 429 also passes it on to the client.
        err.upstream_retry_after = headers.get("Retry-After")  # type: ignore[attr-defined]
        return err

    def _status_error_for(self, status: int, raw: bytes, url: str, headers: Any) -> LaminaError:
        message = _error_message(raw)
        log.info("upstream_failed", provider_id=self.provider_id, url=url, status=status, error=message[:500])
        where = self.where(url)
        if status in (400, 422):
            err = BadRequestError(
                f"provider '{self.provider_id}' rejected the request: {message}", provider_id=self.provider_id
            )
            return err
        if status == 429:
            err = RateLimitError(
                f"provider '{self.provider_id}' is rate limiting: {message}", provider_id=self.provider_id
            )
            if "Retry-After" in headers:
                err.headers["Retry-After"] = headers["Retry-After"]
            return err
        if status in (401, 403):
            return UpstreamError(
                self.provider_id,
                f"{where} refused our credentials (HTTP {status}): {message}. Check the provider's api key.",
                upstream_status=status,
            )
        if status in (408, 504):
            return UpstreamTimeoutError(
                self.provider_id, f"{where} timed out (HTTP {status}): {message}", upstream_status=status
            )
        return UpstreamError(
            self.provider_id, f"{where} answered HTTP {status}: {message}", upstream_status=status
        )


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _error_message(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        return _snippet(raw) if raw else "(empty body)"
    if isinstance(doc, dict):
        err = doc.get("error", doc.get("detail", doc.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)
    return _snippet(raw)
