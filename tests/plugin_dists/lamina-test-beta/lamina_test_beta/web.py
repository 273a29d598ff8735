"""lamina-test-beta's middleware and (do-nothing) safety provider."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from lamina.providers.base import ProviderBase, ProviderContext


@web.middleware
async def add_header(request: web.Request, handler):
    response = await handler(request)
    response.headers["X-Lamina-Test-Beta"] = "seen"
    return response


class BetaConfig(BaseModel):
    pass


async def create_provider(config: BetaConfig, deps: dict, context: ProviderContext) -> ProviderBase:
    return ProviderBase(context)
