"""A real MCP server for the tests: ``python -m mcp_test_server --port P --transport sse|streamable_http``.

Run from this directory (the tests start it as a subprocess on 127.0.0.1). Tools: ``add`` (two
numbers), ``echo`` (text), ``describe`` (optional parameters), ``picture`` (a text and a PNG
image), ``fail`` (raises: the server answers ``isError``), ``protocol_fail`` (raises MCPError: the
server answers a JSON-RPC error) and ``sleep`` (waits ``seconds``). ``echo`` says which process
served it (``pid``), so a test can tell a restarted server from the old one.

``GET /stats`` answers how many MCP sessions clients opened (``{"sessions": n}``: SSE streams
opened, or streamable HTTP POSTs without a session id), so a test can tell whether sessions are
reused. ``GET /traceparents`` answers the ``traceparent`` headers of the requests that had one (a list,
oldest first, at most 100): a test proves the caller's trace context reached the MCP server.
``--token T`` requires ``Authorization: Bearer T`` on every request (401 otherwise). ``--mode``
replaces the MCP server by a broken one: ``garbage`` answers every request 200 with a body that is
not MCP, ``hang`` accepts requests and never answers. ``GET /health`` answers 200 in every mode.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.types import Image
from mcp.shared.exceptions import MCPError
from mcp_types import ErrorData

# The smallest valid PNG: 1x1, one transparent pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def build_server() -> MCPServer:
    server = MCPServer("lamina-test-tools")

    @server.tool(description="Add two numbers.")
    def add(a: float, b: float) -> str:
        return f"{a + b:g}"

    @server.tool(description="Echo the text back, with the serving process id.")
    def echo(text: str, repeat: int = 1) -> str:
        return f"{text * repeat} (pid {os.getpid()})"

    @server.tool(description="Describe someone (optional parameters: anyOf schemas without a type).")
    def describe(name: str, title: str | None = None, tags: list[str] | None = None) -> str:
        return " ".join([title or "", name, *(f"#{t}" for t in tags or [])]).strip()

    @server.tool(description="A caption and a picture.")
    def picture() -> list:
        return ["a tiny picture", Image(data=PNG, format="png")]

    @server.tool(description="Always raises.")
    def fail(reason: str = "boom") -> str:
        raise ValueError(f"the tool failed on purpose: {reason}")

    @server.tool(description="Raises an MCP protocol error.")
    def protocol_fail() -> str:
        raise MCPError.from_error_data(ErrorData(code=-32603, message="internal failure on purpose"))

    @server.tool(description="Sleep for a number of seconds.")
    async def sleep(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds:g}s"

    return server


async def _health(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


STATS = {"sessions": 0}
TRACEPARENTS: list[str] = []


def with_health_and_token(app, token: str | None, sse_path: str = "/sse"):
    async def wrapped(scope, receive, send):
        if scope["type"] == "http":
            if scope["path"] == "/health":
                return await _health(scope, receive, send)
            if scope["path"] in ("/stats", "/traceparents"):
                body = json.dumps(STATS if scope["path"] == "/stats" else TRACEPARENTS).encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
                return
            headers = dict(scope["headers"])
            if b"traceparent" in headers:
                TRACEPARENTS.append(headers[b"traceparent"].decode())
                del TRACEPARENTS[:-100]
            if token is not None and headers.get(b"authorization") != f"Bearer {token}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send(
                    {"type": "http.response.body", "body": b"Unauthorized: a bearer token is required"}
                )
                return
            opens_sse = scope["method"] == "GET" and scope["path"] == sse_path
            opens_http = (
                scope["method"] == "POST" and scope["path"] == "/mcp" and b"mcp-session-id" not in headers
            )
            if opens_sse or opens_http:
                STATS["sessions"] += 1
        await app(scope, receive, send)

    return wrapped


async def garbage_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        return await _health(scope, receive, send)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b'{"this is": "not JSON-RPC"}'})


async def hang_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        return await _health(scope, receive, send)
    await asyncio.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=["sse", "streamable_http"], default="streamable_http")
    parser.add_argument("--sse-path", default="/sse", help="where the SSE stream is served")
    parser.add_argument("--token")
    parser.add_argument("--mode", choices=["tools", "garbage", "hang"], default="tools")
    args = parser.parse_args()
    if args.mode == "garbage":
        app = garbage_app
    elif args.mode == "hang":
        app = hang_app
    else:
        server = build_server()
        if args.transport == "sse":
            app = server.sse_app(sse_path=args.sse_path, host="127.0.0.1")
        else:
            app = server.streamable_http_app(host="127.0.0.1")
    app = with_health_and_token(app, args.token, args.sse_path)
    # An open SSE stream (a client's session) would hold uvicorn's graceful shutdown until the test's
    # stop gave up and killed it 10 s later; the tests stop it to restart it, not to drain it.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
