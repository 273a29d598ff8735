"""An aiohttp handler served through lamina_routes."""

from __future__ import annotations

from aiohttp import web


async def ping(request: web.Request) -> web.Response:
    return web.json_response({"pong": "alpha"})
