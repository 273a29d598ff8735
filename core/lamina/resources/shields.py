"""The shields routing table: serves the Shields API and resolves shield ids for Safety.

A shield is registered with one ``safety`` provider, which checks at registration that it can serve
it (its ``provider_shield_id`` and ``params``). Registrations are persisted in the registry like
models; at start-up every persisted shield is handed to its provider again (``reopen``).
"""

from __future__ import annotations

import structlog

from lamina.apis.common import Empty
from lamina.apis.safety import GetShieldRequest, ListShieldsResponse, RegisterShieldRequest, Shield
from lamina.errors import BadRequestError, ConflictError, NotFoundError
from lamina.resources.routing_table import HOT_LIST_MAX_AGE, RoutingTable

log = structlog.get_logger(__name__)


class ShieldsRoutingTable(RoutingTable[Shield]):
    resource_type = "shield"
    reopen_with = "register_shield"
    resource_class = Shield
    api_name = "safety"
    route = "/v1/shields"

    async def provider_register(self, provider, resource: Shield) -> Shield:
        await provider.register_shield(resource)
        return resource

    async def provider_unregister(self, provider, resource: Shield) -> None:
        await provider.unregister_shield(resource)

    # -- the Shields API -----------------------------------------------------------------------

    async def list_shields(self, request: Empty) -> ListShieldsResponse:
        return ListShieldsResponse(data=await self.list())

    async def get_shield(self, request: GetShieldRequest) -> Shield:
        return await self.get(request.identifier)

    async def register_shield(self, request: RegisterShieldRequest, *, replace: bool = False) -> Shield:
        """Register a shield: idempotent for an identical definition; a different one is a 409
        (``replace``: the run config's definition wins over a persisted one)."""
        provider_id = self.pick_provider(request.provider_id, request.shield_id)
        shield = Shield(
            identifier=request.shield_id,
            provider_resource_id=request.provider_shield_id or request.shield_id,
            provider_id=provider_id,
            params=request.params,
        )
        existing = await self.registry.get(self.resource_type, request.shield_id)
        if existing is not None:
            shield = shield.model_copy(update={"created": existing.get("created", shield.created)})
            if existing == shield.model_dump(mode="json"):
                return shield  # identical: the provider was handed it at start-up
            if not replace:
                raise ConflictError(
                    f"shield '{request.shield_id}' is already registered differently (provider "
                    f"'{existing.get('provider_id')}', provider_shield_id "
                    f"'{existing.get('provider_resource_id')}', params {existing.get('params')}); DELETE "
                    f"/v1/shields/{request.shield_id} first to change it",
                    param="shield_id",
                )
        return await self.add(shield)

    async def unregister_shield(self, request: GetShieldRequest) -> None:
        await self.remove(request.identifier)

    # -- lookups for moderations ---------------------------------------------------------------

    async def for_moderation(self, model: str | None, *, default: str | None = None) -> Shield:
        """The shield a moderation request's ``model`` names: a shield identifier, else the
        ``provider_shield_id`` of exactly one shield. Omitted: ``default`` (the run config's
        ``safety.default_shield_id``, else its first listed shield), else the only registered shield."""
        if not model and default:
            try:
                return await self.get(default)
            except NotFoundError:  # unregistered through the API since start-up
                raise NotFoundError(
                    f"model is omitted and the run config's default shield '{default}' (its "
                    f"safety.default_shield_id, else its first shield under shields:) is not registered "
                    f"now; name a shield as model, or register '{default}' again. Registered shields: "
                    f"{_listed(await self.list(HOT_LIST_MAX_AGE))}.",
                    param="model",
                ) from None
        if model:
            try:
                return await self.get(model)
            except NotFoundError:
                pass
        shields = await self.list(HOT_LIST_MAX_AGE)
        if model:
            matches = [s for s in shields if s.provider_shield_id == model]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise BadRequestError(
                    f"model '{model}' is the provider_shield_id of several shields "
                    f"({', '.join(s.identifier for s in matches)}); name one of them by its shield id",
                    param="model",
                )
            raise NotFoundError(
                f"model '{model}' names no shield (moderations run a shield: send a shield id or a "
                f"provider_shield_id). Registered shields: {_listed(shields)}. Register one with POST "
                f"/v1/shields.",
                param="model",
            )
        if len(shields) == 1:
            return shields[0]
        raise BadRequestError(
            f"model is required: {len(shields)} shields are registered and the run config names no "
            f"default. Name the shield to run, or set safety.default_shield_id (or list a shield under "
            f"shields:) in the run config. Registered shields: {_listed(shields)}.",
            param="model",
        )


def _listed(shields: list[Shield]) -> str:
    return ", ".join(f"{s.identifier} (provider_shield_id {s.provider_shield_id})" for s in shields) or "none"
