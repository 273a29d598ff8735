"""The remote::model-context-protocol provider: tool groups whose tools an MCP server serves.

A tool group names its server with ``mcp_endpoint: {uri: ...}``. Its tools are the server's
``tools/list`` (name, description, and one ``ToolParameter`` per property of the input schema, as
Llama Stack 0.2.12 builds them, plus ``required`` and ``default`` from the schema); invoking one is a
``tools/call`` whose content comes back as Llama Stack content items (text; images as base64 data;
an embedded text resource as its text, a resource link as its URI). A call the tool itself reports
failed (MCP ``isError``) is a 200 with ``error_message`` (the tool's text) and ``error_code`` 1.

Transport (``config.transport``, default ``auto``): SSE when the URI's path ends with ``/sse`` (the
path every SSE server of the mcp SDK uses), else streamable HTTP; when the server refuses the
streamable HTTP POST with 400, 404 or 405, SSE on the same URI (the MCP specification's rule for
old servers). The transport found is remembered per URI.

Headers: the caller's ``X-LlamaStack-Provider-Data`` ``mcp_headers`` (a map from endpoint URI to
headers; a URI matches when host, port and path match, as in Llama Stack) go with every request to
that endpoint. Sessions are cached per endpoint and headers (``lamina_mcp.sessions``); a request
that fails because a cached session went stale (the server restarted) is retried once on a new one.

Failures name the tool group and the endpoint: unreachable, a protocol error, or an error answer
are 502; no answer in time is 504; a 401/403 from the server is a 401/403 telling the caller to send
``mcp_headers``. Tool listings are cached per endpoint and headers for ``tools_cache_seconds``, and
a listing that failed with a 502/504 for ``failure_cache_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

import structlog

from lamina.apis.common import ImageContentItem, ImageSource, TextContentItem
from lamina.apis.tools import ToolDef, ToolGroup, ToolInvocationResult, ToolParameter
from lamina.errors import (
    BadRequestError,
    ForbiddenError,
    LaminaError,
    UnauthorizedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from lamina.providers import ProviderBase, ProviderContext
from lamina.request_context import request_provider_data
from lamina.telemetry import propagation
from lamina_mcp.config import MCPProviderConfig, MCPProviderDataValidator
from lamina_mcp.sessions import NOT_STREAMABLE_HTTP, SessionOpenError, SessionPool, Transport, leaf

log = structlog.get_logger(__name__)
T = TypeVar("T")
_MAX_CACHED_LISTINGS = 1024


async def create_provider(
    config: MCPProviderConfig, deps: dict[Any, Any], context: ProviderContext
) -> MCPToolRuntimeProvider:
    return MCPToolRuntimeProvider(config, context)


class MCPToolRuntimeProvider(ProviderBase):
    # The routing table asks for the tools on every listing instead of caching them once: what a
    # server lists (and whether it lists anything) depends on the caller's headers. Listings are
    # cached here, per endpoint and headers.
    tools_depend_on_request = True

    def __init__(self, config: MCPProviderConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.pool = SessionPool(
            timeout=config.timeout_seconds,
            idle_seconds=config.session_idle_seconds,
            max_sessions=config.max_sessions,
        )
        self._transports: dict[str, Transport] = {}  # uri -> what `auto` found it speaks
        # (uri, headers) -> (expiry, the listing or the failure to list)
        self._tools: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, Any]] = {}

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}

    async def shutdown(self) -> None:
        await self.pool.close()

    # -- tool groups ---------------------------------------------------------------------------

    async def register_toolgroup(self, tool_group: ToolGroup) -> None:
        _endpoint(tool_group)

    async def unregister_toolgroup(self, tool_group: ToolGroup) -> None:
        uri = tool_group.mcp_endpoint.uri if tool_group.mcp_endpoint else None
        self._tools = {k: v for k, v in self._tools.items() if k[0] != uri}

    async def list_runtime_tools(
        self, tool_group: ToolGroup, headers: dict[str, str] | None = None
    ) -> list[ToolDef]:
        """The server's tools. ``headers`` (the Responses API's ``mcp`` tool has its own) are sent
        over the caller's ``mcp_headers``; ``tool_group`` need not be registered."""
        uri = _endpoint(tool_group)
        headers = {**self._headers(uri), **(headers or {})}
        key = (uri, tuple(sorted(headers.items())))
        cached = self._tools.get(key)
        if cached is not None and cached[0] > time.monotonic():
            if isinstance(cached[1], UpstreamError):
                raise cached[1].with_traceback(None)
            return cached[1]
        try:
            tools = await self._request(
                tool_group, uri, headers, "listing its tools", _list_tools, self.config.timeout_seconds
            )
        except UpstreamError as exc:
            self._remember(key, exc, self.config.failure_cache_seconds)
            raise
        defs = [_tool_def(tool, uri) for tool in tools]
        self._remember(key, defs, self.config.tools_cache_seconds)
        return defs

    def _remember(self, key: Any, listing: list[ToolDef] | UpstreamError, seconds: float) -> None:
        """Cache a listing (or the failure to list) per endpoint and headers, bounded in size."""
        if not seconds:
            self._tools.pop(key, None)
            return
        now = time.monotonic()
        if len(self._tools) >= _MAX_CACHED_LISTINGS:  # one entry per caller's headers: keep it bounded
            self._tools = {k: v for k, v in self._tools.items() if v[0] > now}
            while len(self._tools) >= _MAX_CACHED_LISTINGS:
                del self._tools[min(self._tools, key=lambda k: self._tools[k][0])]
        self._tools[key] = (now + seconds, listing)

    async def invoke_tool(
        self,
        tool_group: ToolGroup,
        tool_name: str,
        kwargs: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> ToolInvocationResult:
        """Call one tool (``headers`` as in ``list_runtime_tools``)."""
        uri = _endpoint(tool_group)
        headers = {**self._headers(uri), **(headers or {})}

        # The caller's trace context (telemetry on) rides in the request's _meta (MCP's SEP-414); the
        # session's HTTP client copies it into the traceparent header (lamina_mcp.sessions).
        meta = propagation.carrier() or None

        async def call(session: Any) -> Any:
            if meta is None:
                return await session.call_tool(tool_name, kwargs)
            return await session.call_tool(tool_name, kwargs, meta=meta)

        result = await self._request(
            tool_group, uri, headers, f"calling tool '{tool_name}'", call, self.config.tool_timeout_seconds
        )
        content = [_content_item(item) for item in result.content]
        content = [c for c in content if c is not None]
        if result.is_error:
            text = "\n".join(c.text for c in content if isinstance(c, TextContentItem))
            return ToolInvocationResult(
                content=content,
                error_message=text or f"tool '{tool_name}' reported an error without a message",
                error_code=1,
            )
        metadata = {"structured_content": result.structured_content} if result.structured_content else None
        return ToolInvocationResult(content=content, metadata=metadata)

    # -- requests ------------------------------------------------------------------------------

    def _headers(self, uri: str) -> dict[str, str]:
        """The caller's ``mcp_headers`` for this endpoint (400 naming the field when malformed)."""
        # validated by the server with MCPProviderDataValidator before the request got here
        parsed = request_provider_data(MCPProviderDataValidator)
        if parsed is None or not parsed.mcp_headers:
            return {}
        wanted = _canonical(uri)
        headers: dict[str, str] = {}
        for endpoint, values in (parsed.mcp_headers or {}).items():
            if _canonical(endpoint) == wanted:
                headers.update(values)
        return headers

    def _transport(self, uri: str) -> Transport:
        if self.config.transport != "auto":
            return self.config.transport
        known = self._transports.get(uri)
        if known is not None:
            return known
        return "sse" if urlparse(uri).path.rstrip("/").endswith("/sse") else "streamable_http"

    async def _request(
        self,
        group: ToolGroup,
        uri: str,
        headers: dict[str, str],
        what: str,
        work: Callable[[Any], Awaitable[T]],
        limit: float,
    ) -> T:
        transport = self._transport(uri)
        retried = False
        while True:
            try:
                session = await self.pool.acquire(uri, transport, headers)
            except SessionOpenError as exc:
                fallback = self._fallback(uri, transport, exc)
                if fallback is not None:
                    transport = fallback
                    continue
                raise _open_error(group, uri, transport, what, exc) from None
            seen = len(session.statuses.seen)
            try:
                async with asyncio.timeout(limit):
                    result = await work(session.client)
                self._transports.setdefault(uri, transport)
                await self.pool.release(session)
                return result
            except TimeoutError:
                await self.pool.release(session)
                raise UpstreamTimeoutError(
                    group.provider_id,
                    f"tool group '{group.identifier}': the MCP server at {uri} did not finish {what} within "
                    f"{limit:g} s; check the server, or raise the provider's "
                    f"{'tool_timeout_seconds' if what.startswith('calling') else 'timeout_seconds'}",
                ) from None
            except Exception as exc:
                stale = _stale(exc, session.alive, session.statuses.seen[seen:])
                if stale:
                    await self.pool.discard(session)
                else:
                    await self.pool.release(session)
                if stale and not retried and session.uses > 1:
                    log.info("mcp_session_stale_retrying", uri=uri, error=repr(leaf(exc))[:200])
                    retried = True
                    continue
                raise _request_error(group, uri, what, exc) from None

    def _fallback(self, uri: str, transport: Transport, exc: SessionOpenError) -> Transport | None:
        """SSE, when ``auto`` tried streamable HTTP and the server said it does not speak it."""
        if self.config.transport != "auto" or transport != "streamable_http" or uri in self._transports:
            return None
        if any(status in NOT_STREAMABLE_HTTP for status in exc.statuses):
            log.info("mcp_transport_fallback_sse", uri=uri, statuses=exc.statuses)
            return "sse"
        return None


async def _list_tools(session: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(1000):  # a server whose cursor never ends must not keep us here
        from mcp_types import PaginatedRequestParams

        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _endpoint(group: ToolGroup) -> str:
    if group.mcp_endpoint is None or not group.mcp_endpoint.uri:
        raise BadRequestError(
            f"mcp_endpoint: tool group '{group.identifier}' needs the MCP server's address: register it "
            'with "mcp_endpoint": {"uri": "http://host:port/mcp"} (or .../sse for an SSE server)',
            param="mcp_endpoint",
        )
    uri = group.mcp_endpoint.uri
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadRequestError(
            f"mcp_endpoint.uri: {uri!r} is not an http(s) URL; MCP servers are reached over HTTP "
            f"(streamable HTTP, or SSE at a path ending with /sse)",
            param="mcp_endpoint.uri",
        )
    return uri


def _canonical(uri: str) -> str:
    parsed = urlparse(uri)
    return f"{parsed.netloc}/{parsed.path.rstrip('/')}"


def _tool_def(tool: Any, uri: str) -> ToolDef:
    schema = tool.input_schema or {}
    required = set(schema.get("required") or [])
    parameters = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        parameters.append(
            ToolParameter(
                name=name,
                parameter_type=_json_type(prop),
                description=prop.get("description") or prop.get("title") or "",
                required=name in required,
                default=prop.get("default"),
            )
        )
    return ToolDef(
        name=tool.name, description=tool.description, parameters=parameters, metadata={"endpoint": uri}
    )


def _json_type(schema: dict[str, Any]) -> str:
    """A property's JSON type: ``type`` (its first non-null one when a list), else the first non-null
    type among ``anyOf``/``oneOf`` (an optional parameter's schema), else "any" (unchecked by the
    router; Llama Stack says "string", which made valid non-string arguments a 400)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if isinstance(kind, str) and kind != "null":
        return kind
    for option in schema.get("anyOf") or schema.get("oneOf") or []:
        if isinstance(option, dict):
            found = _json_type(option)
            if found not in ("any", "null"):
                return found
    return "any"


def _content_item(item: Any) -> TextContentItem | ImageContentItem | None:
    kind = getattr(item, "type", None)
    if kind == "text":
        return TextContentItem(text=item.text)
    if kind == "image":
        return ImageContentItem(image=ImageSource(data=item.data))
    if kind == "resource":  # an embedded resource: its text, or a note for a blob
        resource = item.resource
        text = getattr(resource, "text", None)
        return TextContentItem(text=text if text is not None else f"[resource {resource.uri}]")
    if kind == "resource_link":
        return TextContentItem(text=f"[resource {item.uri}]")
    log.warning("mcp_content_skipped", type=kind)  # audio has no Llama Stack content item
    return None


# -- what failures mean -----------------------------------------------------------------------------


CONNECTION_CLOSED = -32000  # mcp_types.jsonrpc.CONNECTION_CLOSED


def _stale(exc: BaseException, alive: bool, statuses: list[int]) -> bool:
    """The session is unusable but a new one may work: the server forgot it (it answers 404 to the
    session's id: "Session not found", "Session terminated") or the connection broke."""
    from mcp.shared.exceptions import MCPError

    exc = leaf(exc)
    if not alive or 404 in statuses:
        return True
    if isinstance(exc, MCPError):  # the stream of a session whose server went away ends with -32000
        return exc.error.code == CONNECTION_CLOSED or "session" in exc.error.message.lower()
    return _is_transport_error(exc)


def _is_transport_error(exc: BaseException) -> bool:
    import anyio
    import httpx2

    return isinstance(exc, (httpx2.TransportError, anyio.ClosedResourceError, anyio.EndOfStream, OSError))


def _where(group: ToolGroup, uri: str) -> str:
    return f"tool group '{group.identifier}': the MCP server at {uri}"


def _auth_error(group: ToolGroup, uri: str, status: int) -> LaminaError:
    cls = UnauthorizedError if status == 401 else ForbiddenError
    return cls(
        f"{_where(group, uri)} answered {status} ({'Unauthorized' if status == 401 else 'Forbidden'}): "
        f"send its "
        f'credentials in the X-LlamaStack-Provider-Data header: {{"mcp_headers": {{"{uri}": '
        f'{{"Authorization": "Bearer ..."}}}}}}',
        param="X-LlamaStack-Provider-Data.mcp_headers",
    )


def _open_error(
    group: ToolGroup, uri: str, transport: Transport, what: str, exc: SessionOpenError
) -> LaminaError:
    import httpx2

    for status in (401, 403):
        if status in exc.statuses:
            return _auth_error(group, uri, status)
    error = leaf(exc.error)
    if isinstance(error, TimeoutError | httpx2.TimeoutException):
        return UpstreamTimeoutError(
            group.provider_id,
            f"{_where(group, uri)} did not complete the MCP handshake ({transport}) within the provider's "
            f"timeout_seconds while {what}; check that it is an MCP server and that it is not overloaded",
        )
    if isinstance(error, httpx2.ConnectError | OSError):
        return UpstreamError(
            group.provider_id,
            f"{_where(group, uri)} is unreachable ({type(error).__name__}: {error}); check that the server "
            f"runs and the tool group's mcp_endpoint.uri",
        )
    statuses = f" (HTTP {', '.join(map(str, exc.statuses))})" if exc.statuses else ""
    return UpstreamError(
        group.provider_id,
        f"{_where(group, uri)} failed the MCP handshake over {transport}{statuses} while {what}: "
        f"{type(error).__name__}: {error}; check that mcp_endpoint.uri is the server's MCP endpoint (for "
        f"example .../mcp for streamable HTTP, .../sse for SSE)",
        upstream_status=exc.statuses[-1] if exc.statuses else None,
    )


def _request_error(group: ToolGroup, uri: str, what: str, exc: BaseException) -> LaminaError:
    from mcp.shared.exceptions import MCPError

    error = leaf(exc)
    if isinstance(error, MCPError):
        return UpstreamError(
            group.provider_id,
            f"{_where(group, uri)} answered an error while {what}: {error.error.message} (code "
            f"{error.error.code})",
        )
    if _is_transport_error(error):
        return UpstreamError(
            group.provider_id,
            f"{_where(group, uri)} stopped answering while {what} ({type(error).__name__}: {error}); "
            f"check that the server runs",
        )
    return UpstreamError(
        group.provider_id,
        f"{_where(group, uri)} sent an answer that is not valid MCP while {what}: {type(error).__name__}: "
        f"{str(error)[:300]}",
    )
