"""Inspect and Providers: health, version, the served routes, the configured providers."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from lamina.access.declarations import no_resource
from lamina.apis.common import Empty
from lamina.apis.webmethod import webmethod


class ProviderDown(BaseModel):
    provider_id: str
    api: str
    message: str | None = None


class HealthInfo(BaseModel):
    status: Literal["OK", "Error", "Not Implemented"]
    providers_down: list[ProviderDown] = Field(
        default_factory=list, description="Providers that are down, and why (retried in the background)."
    )


class VersionInfo(BaseModel):
    version: str


class RouteInfo(BaseModel):
    route: str
    method: str
    provider_types: list[str]


class ListRoutesResponse(BaseModel):
    data: list[RouteInfo]


class ProviderInfo(BaseModel):
    api: str
    provider_id: str
    provider_type: str
    config: dict[str, Any]
    health: dict[str, Any]


class ListProvidersResponse(BaseModel):
    data: list[ProviderInfo]


class GetProviderRequest(BaseModel):
    provider_id: str = Field(min_length=1)


class Inspect(Protocol):
    @webmethod(
        "GET", "/v1/health", request=Empty, response=HealthInfo, access=no_resource("the server's health")
    )
    async def health(self, request: Empty) -> HealthInfo:
        """Report that the server is up (always 200), listing the providers that are down."""
        ...

    @webmethod(
        "GET",
        "/v1/health/ready",
        request=Empty,
        response=HealthInfo,
        access=no_resource("the server's readiness"),
    )
    async def ready(self, request: Empty) -> HealthInfo:
        """Readiness: 200 when every provider is up, 503 naming the providers that are down."""
        ...

    @webmethod(
        "GET", "/v1/version", request=Empty, response=VersionInfo, access=no_resource("the server's version")
    )
    async def version(self, request: Empty) -> VersionInfo:
        """Report the server's version."""
        ...

    @webmethod(
        "GET",
        "/v1/inspect/routes",
        request=Empty,
        response=ListRoutesResponse,
        access=no_resource("the routes this server serves"),
    )
    async def list_routes(self, request: Empty) -> ListRoutesResponse:
        """List every served route with the provider types behind it."""
        ...


class Providers(Protocol):
    @webmethod(
        "GET",
        "/v1/providers",
        request=Empty,
        response=ListProvidersResponse,
        access=no_resource("the configured providers"),
    )
    async def list_providers(self, request: Empty) -> ListProvidersResponse:
        """List configured providers with their (redacted) config and health."""
        ...

    @webmethod(
        "GET",
        "/v1/providers/{provider_id}",
        request=GetProviderRequest,
        response=ProviderInfo,
        access=no_resource("a configured provider"),
    )
    async def inspect_provider(self, request: GetProviderRequest) -> ProviderInfo:
        """Get one configured provider."""
        ...
