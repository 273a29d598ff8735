"""A bare aiohttp reverse proxy: the floor for any gateway built on aiohttp's server and client.

It does what Lamina's OpenAI pass-through does at the HTTP level (read the request, POST it to the
upstream over a pooled keep-alive connection, relay the answer or the event stream) and nothing
else: no validation, no model lookup, no re-serialisation, no logging, no request ids. The
difference between it and Lamina is Lamina's own per-request cost; the difference between it and
the direct upstream is aiohttp's.

Run it with ``python -m bench.proxy --port N --upstream http://127.0.0.1:M``.
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")
_UPSTREAM: web.AppKey[str] = web.AppKey("upstream")


def make_app(upstream: str) -> web.Application:
    async def session_ctx(app: web.Application):
        app[_SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        yield
        await app[_SESSION].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app[_SESSION].post(
            request.app[_UPSTREAM] + "/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as up:
            if up.headers.get("Content-Type", "").startswith("text/event-stream"):
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)
                async for data in up.content.iter_any():
                    await resp.write(data)
                await resp.write_eof()
                return resp
            data = await up.read()
            return web.Response(body=data, status=up.status, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "OK"})

    app = web.Application()
    app[_UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="A bare aiohttp reverse proxy (benchmark reference).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.upstream), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
