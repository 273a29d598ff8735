"""Routing tables: register, list and resolve resources of one type across providers."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import structlog

from lamina.apis.common import Resource
from lamina.errors import BadRequestError, LaminaError, NotFoundError
from lamina.plugins import PluginManager
from lamina.resources.registry import ResourceRegistry

R = TypeVar("R", bound=Resource)
log = structlog.get_logger(__name__)

_MAX_LISTED = 25
# How old a listing a hot-path lookup accepts (seconds): other replicas' registrations show within it.
HOT_LIST_MAX_AGE = 1.0


class RoutingTable(Generic[R]):
    """Resources of one type, each owned by one provider of one API."""

    resource_type: str = ""
    resource_class: type[R]
    api_name: str = ""
    route: str = ""  # where users register this kind of resource, for messages
    reopen_with: str = ""  # the provider method ``reopen`` hands each persisted resource to

    def __init__(self, registry: ResourceRegistry, providers: dict[str, Any], pm: PluginManager) -> None:
        self.registry = registry
        self.providers = providers  # provider_id -> provider object (filled as providers start)
        self.pm = pm

    # -- lookups -------------------------------------------------------------------------------

    async def list(self, max_age: float = 0.0) -> list[R]:
        """Every resource, sorted by identifier (``max_age``: see ``ResourceRegistry.list``)."""
        docs = await self.registry.list(self.resource_type, max_age)
        return sorted((self.resource_class.model_validate(d) for d in docs), key=lambda r: r.identifier)

    async def get(self, identifier: str) -> R:
        doc = self.registry.cached(self.resource_type, identifier) or await self.registry.get(
            self.resource_type, identifier
        )
        if doc is None:
            raise NotFoundError(await self._unknown_message(identifier), param=identifier)
        return self.resource_class.model_validate(doc)

    async def resolve(self, identifier: str) -> tuple[R, Any]:
        """The resource and the provider object that serves it."""
        resource = await self.get(identifier)
        provider = self.providers.get(resource.provider_id)
        if provider is None:
            raise BadRequestError(
                f"{self.resource_type} '{identifier}' is registered with provider '{resource.provider_id}', "
                f"which is not configured in this server's run config. Configured {self.api_name} providers: "
                f"{', '.join(sorted(self.providers)) or 'none'}. Re-register it with one of them."
            )
        return resource, provider

    async def _unknown_message(self, identifier: str) -> str:
        known = [r.identifier for r in await self.list()]
        listed = ", ".join(known[:_MAX_LISTED]) + (
            f" and {len(known) - _MAX_LISTED} more" if len(known) > _MAX_LISTED else ""
        )
        return (
            f"{self.resource_type} '{identifier}' is not registered. Registered: {listed or 'none'}. "
            f"Register it with POST {self.route}."
        )

    # -- changes -------------------------------------------------------------------------------

    def pick_provider(self, provider_id: str | None, identifier: str) -> str:
        if provider_id is None:
            if len(self.providers) == 1:
                return next(iter(self.providers))
            if not self.providers:
                raise BadRequestError(
                    f"no {self.api_name} provider is configured, so no {self.resource_type} "
                    f"can be served; add one under providers.{self.api_name} in the run config"
                )
            raise BadRequestError(
                f"several {self.api_name} providers are configured ({', '.join(sorted(self.providers))}); "
                f"name one in provider_id to register '{identifier}'",
                param="provider_id",
            )
        if provider_id not in self.providers:
            raise BadRequestError(
                f"provider '{provider_id}' is not a configured {self.api_name} provider, so it cannot serve "
                f"{self.resource_type} '{identifier}'. "
                f"Configured: {', '.join(sorted(self.providers)) or 'none'}.",
                param="provider_id",
            )
        return provider_id

    async def add(self, resource: R) -> R:
        """Validate with plugins and the owning provider, then persist."""
        doc = resource.model_dump(mode="json")
        vetoes = self.pm.resource_vetoes(self.resource_type, doc)
        if vetoes:
            reasons = "; ".join(f"{v.plugin}: {v.reason}" for v in vetoes)
            raise BadRequestError(
                f"registration of {self.resource_type} '{resource.identifier}' refused: {reasons}"
            )
        provider = self.providers[resource.provider_id]
        resource = await self.provider_register(provider, resource)
        await self.registry.put(self.resource_type, resource.identifier, resource.model_dump(mode="json"))
        return resource

    async def remove(self, identifier: str) -> None:
        resource = await self.get(identifier)
        provider = self.providers.get(resource.provider_id)
        if provider is not None:
            await self.provider_unregister(provider, resource)
        await self.registry.delete(self.resource_type, identifier)

    async def provider_register(self, provider: Any, resource: R) -> R:
        return resource

    async def provider_unregister(self, provider: Any, resource: R) -> None:
        return None

    # -- start-up ------------------------------------------------------------------------------

    async def reopen(self) -> None:
        """Hand every persisted resource to its provider again (after a restart), with the provider's
        ``reopen_with`` method. A resource whose provider is not configured any more stays in the
        registry (using it answers clearly, naming the provider) and is logged; a provider failing to
        reopen one is logged too, so one broken resource does not stop the server."""
        kind = self.resource_type
        for resource in await self.list():
            provider = self.providers.get(resource.provider_id)
            if provider is None:
                missing = {kind: resource.identifier, "provider_id": resource.provider_id}
                log.warning(f"{kind}_provider_missing", **missing)
                continue
            try:
                await getattr(provider, self.reopen_with)(resource)
            except Exception as exc:  # one broken resource must not stop the server
                message = exc.message if isinstance(exc, LaminaError) else f"{type(exc).__name__}: {exc}"
                log.warning(f"{kind}_not_reopened", **{kind: resource.identifier}, error=message)
