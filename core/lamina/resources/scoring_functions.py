"""The scoring functions routing table: serves the ScoringFunctions API and resolves functions for Scoring.

A scoring function is registered with one ``scoring`` provider, which checks at registration that it
can serve it (``provider_scoring_fn_id``, ``params``). Providers bring their built-in functions as
default resources (``lamina_scoring_functions``); users register more (an LLM judge with its own prompt
and model). Registrations are persisted in the registry; providers keep no state of their own, since
every score call hands them the function.
"""

from __future__ import annotations

from lamina.apis.common import Empty
from lamina.apis.scoring import (
    GetScoringFunctionRequest,
    ListScoringFunctionsResponse,
    RegisterScoringFunctionRequest,
    ScoringFn,
)
from lamina.errors import ConflictError
from lamina.resources.routing_table import RoutingTable


class ScoringFunctionsRoutingTable(RoutingTable[ScoringFn]):
    resource_type = "scoring_function"
    resource_class = ScoringFn
    api_name = "scoring"
    route = "/v1/scoring-functions"

    async def provider_register(self, provider, resource: ScoringFn) -> ScoringFn:
        await provider.register_scoring_function(resource)
        return resource

    # -- the ScoringFunctions API --------------------------------------------------------------

    async def list_scoring_functions(self, request: Empty) -> ListScoringFunctionsResponse:
        return ListScoringFunctionsResponse(data=await self.list())

    async def get_scoring_function(self, request: GetScoringFunctionRequest) -> ScoringFn:
        return await self.get(request.scoring_fn_id)

    async def register_scoring_function(
        self, request: RegisterScoringFunctionRequest, *, replace: bool = False
    ) -> None:
        """Register a scoring function: idempotent for an identical definition; a different one is a
        409 (``replace``: the run config's definition wins over a persisted one)."""
        provider_id = self.pick_provider(request.provider_id, request.scoring_fn_id)
        fn = ScoringFn(
            identifier=request.scoring_fn_id,
            provider_resource_id=request.provider_scoring_fn_id or request.scoring_fn_id,
            provider_id=provider_id,
            description=request.description,
            return_type=request.return_type,
            params=request.params,
            metadata=request.metadata,
        )
        existing = await self.registry.get(self.resource_type, request.scoring_fn_id)
        if existing is not None:
            fn = fn.model_copy(update={"created": existing.get("created", fn.created)})
            if existing == fn.model_dump(mode="json"):
                return None
            if not replace:
                raise ConflictError(
                    f"scoring function '{request.scoring_fn_id}' is already registered differently "
                    f"(provider '{existing.get('provider_id')}', provider_scoring_fn_id "
                    f"'{existing.get('provider_resource_id')}', params {existing.get('params')}); register "
                    f"it under another scoring_fn_id, or send score calls your params instead",
                    param="scoring_fn_id",
                )
        await self.add(fn)
        return None
