"""Inspect and Providers: the core answers these itself."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from pydantic import SecretStr

from lamina.apis.common import Empty
from lamina.apis.inspect import (
    GetProviderRequest,
    HealthInfo,
    ListProvidersResponse,
    ListRoutesResponse,
    ProviderDown,
    ProviderInfo,
    RouteInfo,
    VersionInfo,
)
from lamina.apis.webmethod import routes_of
from lamina.errors import NotFoundError, ServiceUnavailableError
from lamina.provider_health import HealthMonitor


class ServedStack(Protocol):
    """What Inspect and Providers read of the stack (``lamina.stack.Stack``, which builds them): named
    here so that this module does not import the stack that imports it."""

    health: HealthMonitor
    order: list[Any]  # lamina.stack.ProviderRecord, in start order

    @property
    def version(self) -> str: ...

    def api_impls(self) -> list[tuple[type, Any, list[str]]]: ...


# "token" as a word part (hf_token, access_token), not a count or a tool (max_tokens, tokenizer).
_SECRET_KEY = re.compile(r"(api_?key|password|passphrase|secret|credential|token(?![a-z]))", re.IGNORECASE)
REDACTED = "********"


def redact(value: Any, key: str = "") -> Any:
    """Config as shown to clients: secrets replaced, everything else JSON-safe."""
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if key and _SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class InspectImpl:
    def __init__(self, stack: ServedStack) -> None:
        self.stack = stack

    async def health(self, request: Empty) -> HealthInfo:
        # Liveness: no I/O here, only what the start-up probe, the retries and /v1/providers found.
        return HealthInfo(status="OK", providers_down=[ProviderDown(**d) for d in self.stack.health.down()])

    async def ready(self, request: Empty) -> HealthInfo:
        down = self.stack.health.down()
        if down:
            named = "; ".join(f"provider '{d['provider_id']}' ({d['api']}): {d['message']}" for d in down)
            raise ServiceUnavailableError(
                f"not ready: {named}. Down providers are retried in the background; "
                f"GET /v1/providers shows each one's state.",
                retry_after=5,
                providers_down=down,
            )
        return HealthInfo(status="OK")

    async def version(self, request: Empty) -> VersionInfo:
        return VersionInfo(version=self.stack.version)

    async def list_routes(self, request: Empty) -> ListRoutesResponse:
        data = []
        for protocol, _impl, provider_types in self.stack.api_impls():
            for decl in routes_of(protocol):
                for path in decl.paths:
                    data.append(
                        RouteInfo(
                            route=decl.openapi_path(path), method=decl.method, provider_types=provider_types
                        )
                    )
        return ListRoutesResponse(data=sorted(data, key=lambda r: (r.route, r.method)))


class ProvidersImpl:
    def __init__(self, stack: ServedStack) -> None:
        self.stack = stack

    def _records(self) -> list[Any]:
        return sorted(self.stack.order, key=lambda r: (r.api.value, r.provider_id))

    async def _info(self, record: Any) -> ProviderInfo:
        if record.key in self.stack.health.states:
            # A live check, recorded: a provider found down here is retried in the background too.
            health = await self.stack.health.check(record.key)
        else:  # not started (start-up failed or still running)
            health = {"status": "Error", "message": "the provider has not started"}
        return ProviderInfo(
            api=record.api.value,
            provider_id=record.provider_id,
            provider_type=record.spec.provider_type,
            config=redact(record.config.model_dump(mode="python")),
            health=health,
        )

    async def list_providers(self, request: Empty) -> ListProvidersResponse:
        infos = await asyncio.gather(*(self._info(r) for r in self._records()))
        return ListProvidersResponse(data=list(infos))

    async def inspect_provider(self, request: GetProviderRequest) -> ProviderInfo:
        for record in self._records():
            if record.provider_id == request.provider_id:
                return await self._info(record)
        known = ", ".join(r.provider_id for r in self._records()) or "none"
        raise NotFoundError(
            f"provider '{request.provider_id}' is not configured. Configured providers: {known}."
        )
