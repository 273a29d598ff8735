"""MCP client sessions: opening one over either transport, a cache of open ones, and what failures mean.

A session is opened inside the mcp package's async context managers (the transport's task group,
then ``ClientSession``), which must be left by the task that entered them. So each session lives in
a task of its own (``_Session._run``) that opens it, reports it ready, and holds it open until it is
closed; requests from any task then go through ``ClientSession``, which matches answers to requests
by id, so concurrent calls share one session.

The cache keeps one session per (endpoint, transport, headers): different callers' headers never
share a session. A session unused for ``idle_seconds`` is closed, and the oldest beyond
``max_sessions``. A session that failed (its server went away or forgot it) is dropped; the provider
retries a request once on a new session when the failure says the old one was stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from lamina.telemetry import active

log = structlog.get_logger(__name__)

Transport = Literal["streamable_http", "sse"]

# HTTP statuses by which a server says it does not speak streamable HTTP at this URI (the MCP
# specification's backwards-compatibility rule: then try the old HTTP+SSE transport).
NOT_STREAMABLE_HTTP = {400, 404, 405}


@dataclass
class HTTPStatuses:
    """The error statuses the server answered during one session (the mcp package turns a 401 on a
    streamable HTTP POST into a JSON-RPC error without the status; these keep it)."""

    seen: list[int] = field(default_factory=list)

    async def record(self, response: Any) -> None:
        if response.status_code >= 400:
            self.seen.append(response.status_code)


async def _trace_header(request: Any) -> None:
    """Copy a request's ``_meta.traceparent`` (put there by the provider, telemetry on) into the HTTP
    ``traceparent``/``tracestate`` headers. The session's HTTP requests are sent by a task of the session,
    not of the caller, so the caller's trace context reaches them only through the message itself."""
    if active() is None:
        return
    try:
        body = request.content  # raises for a streamed body, which carries no JSON-RPC message
        if b'"traceparent"' not in body:
            return
        meta = json.loads(body).get("params", {}).get("_meta", {})
    except Exception:
        return
    for name in ("traceparent", "tracestate"):
        if isinstance(meta.get(name), str):
            request.headers[name] = meta[name]


class _Session:
    def __init__(self, uri: str, transport: Transport, headers: dict[str, str], timeout: float) -> None:
        self.uri = uri
        self.transport = transport
        self.headers = headers
        self.timeout = timeout
        self.statuses = HTTPStatuses()
        self.client: Any = None  # mcp.ClientSession once ready
        self.failed: BaseException | None = None
        self.last_used = time.monotonic()
        self.uses = 0
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.failed is None and self._task is not None and not self._task.done()

    async def open(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mcp-session {self.uri}")
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(self._ready)
        except BaseException:
            await self.close()
            raise

    async def _run(self) -> None:
        from mcp import ClientSession

        try:
            async with self._streams() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                self.client = session
                self._ready.set_result(None)
                await self._closing.wait()
        except BaseException as exc:  # the task's end: report it to whoever waits, never re-raise
            self.failed = exc
            if not self._ready.done():
                self._ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError(repr(exc)))
                # Retrieved here: when open() gave up waiting (timeout), nobody else reads it.
                self._ready.exception()
            else:
                log.info("mcp_session_ended", uri=self.uri, error=repr(leaf(exc))[:200])
            if isinstance(exc, asyncio.CancelledError):
                raise

    @contextlib.asynccontextmanager
    async def _streams(self) -> AsyncIterator[tuple[Any, Any]]:
        import httpx2
        from mcp.client.sse import sse_client
        from mcp.client.streamable_http import streamable_http_client

        # Connect, write and pool time are bounded by the timeout; reads are not (a tool may take
        # long, and an SSE stream idles between events): the caller bounds each request instead.
        timeout = httpx2.Timeout(self.timeout, read=None)
        hooks = {"request": [_trace_header], "response": [self.statuses.record]}
        if self.transport == "sse":

            def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
                return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, event_hooks=hooks)

            async with sse_client(
                self.uri,
                headers=self.headers,
                timeout=self.timeout,
                sse_read_timeout=24 * 3600,
                httpx_client_factory=factory,
            ) as streams:
                yield streams[0], streams[1]
        else:
            async with (
                httpx2.AsyncClient(headers=self.headers, timeout=timeout, event_hooks=hooks) as http,
                streamable_http_client(self.uri, http_client=http) as streams,
            ):
                yield streams[0], streams[1]

    async def close(self) -> None:
        self._closing.set()
        task = self._task
        if task is None or task.done():
            return
        try:
            async with asyncio.timeout(5):
                await asyncio.shield(task)
        except BaseException:  # a transport that does not close in time is cancelled
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


SessionKey = tuple[str, str, tuple[tuple[str, str], ...]]


def _key(uri: str, transport: str, headers: dict[str, str]) -> SessionKey:
    return (uri, transport, tuple(sorted(headers.items())))


class SessionOpenError(Exception):
    """Opening a session failed: ``error`` is why, ``statuses`` the HTTP error statuses seen."""

    def __init__(self, error: BaseException, statuses: list[int]) -> None:
        super().__init__(repr(error))
        self.error = error
        self.statuses = statuses


class SessionPool:
    """Open sessions by (endpoint, transport, headers); see the module docstring."""

    def __init__(self, *, timeout: float, idle_seconds: float, max_sessions: int) -> None:
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        self.max_sessions = max_sessions
        self._sessions: dict[SessionKey, _Session] = {}
        self._opening: dict[SessionKey, asyncio.Future[_Session]] = {}
        self.opened = 0  # sessions opened since start (the tests read it)

    async def acquire(self, uri: str, transport: Transport, headers: dict[str, str]) -> _Session:
        """A cached live session, or a new one (``SessionOpenError`` when it cannot be opened)."""
        key = _key(uri, transport, headers)
        await self._expire()
        session = self._sessions.get(key)
        if session is not None and session.alive:
            session.uses += 1
            session.last_used = time.monotonic()
            return session
        if session is not None:
            await self._drop(key, session)
        pending = self._opening.get(key)
        if pending is not None:  # another request is opening this very session: share it
            session = await asyncio.shield(pending)
            session.uses += 1
            return session
        future: asyncio.Future[_Session] = asyncio.get_running_loop().create_future()
        self._opening[key] = future
        try:
            session = _Session(uri, transport, headers, self.timeout)
            try:
                await session.open()
            except Exception as exc:
                raise SessionOpenError(exc, session.statuses.seen) from exc
            self.opened += 1
            session.uses = 1
            if self.idle_seconds:
                self._sessions[key] = session
            future.set_result(session)
            return session
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._opening.pop(key, None)

    async def release(self, session: _Session) -> None:
        """After a request: an uncached session (idle_seconds 0) or a dead one is closed."""
        session.last_used = time.monotonic()
        key = _key(session.uri, session.transport, session.headers)
        if not self.idle_seconds or not session.alive:
            await self._drop(key, session)

    async def discard(self, session: _Session) -> None:
        """Close a session that failed (its server restarted, say); the next request opens a new one."""
        await self._drop(_key(session.uri, session.transport, session.headers), session)

    async def _expire(self) -> None:
        now = time.monotonic()
        stale = [
            (k, s)
            for k, s in self._sessions.items()
            if not s.alive or (self.idle_seconds and now - s.last_used > self.idle_seconds)
        ]
        extra = len(self._sessions) - len(stale) - self.max_sessions + 1
        if extra > 0:
            live = sorted((s.last_used, k) for k, s in self._sessions.items() if (k, s) not in stale)
            stale += [(k, self._sessions[k]) for _, k in live[:extra]]
        for k, s in stale:
            await self._drop(k, s)

    async def _drop(self, key: SessionKey, session: _Session) -> None:
        if self._sessions.get(key) is session:
            del self._sessions[key]
        await session.close()

    async def close(self) -> None:
        for key, session in list(self._sessions.items()):
            await self._drop(key, session)


def leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside (anyio's task groups wrap the real failure)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
