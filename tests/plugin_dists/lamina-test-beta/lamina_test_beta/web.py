"""lamina-test-beta's middleware and its safety provider, which finds every message safe."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from lamina.apis.safety import RunShieldResponse, Shield
from lamina.providers.base import ProviderBase, ProviderContext


@web.middleware
async def add_header(request: web.Request, handler):
    response = await handler(request)
    response.headers["X-Lamina-Test-Beta"] = "seen"
    return response


class BetaConfig(BaseModel):
    pass


class AllowAll(ProviderBase):
    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self.shields: set[str] = set()

    async def register_shield(self, shield: Shield) -> None:
        self.shields.add(shield.identifier)

    async def unregister_shield(self, shield: Shield) -> None:
        self.shields.discard(shield.identifier)

    async def run_shield(
        self, shield: Shield, messages: list[Any], params: dict[str, Any]
    ) -> RunShieldResponse:
        return RunShieldResponse(violation=None)


async def create_provider(config: BetaConfig, deps: dict, context: ProviderContext) -> AllowAll:
    return AllowAll(context)
