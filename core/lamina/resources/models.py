"""The models routing table: serves the Models API and resolves model ids for inference."""

from __future__ import annotations

from lamina.apis.common import Empty
from lamina.apis.models import (
    GetModelRequest,
    ListModelsResponse,
    Model,
    ModelEntry,
    OpenAIListModelsResponse,
    OpenAIModel,
    RegisterModelRequest,
)
from lamina.errors import BadRequestError, ConflictError
from lamina.resources.routing_table import RoutingTable


class ModelsRoutingTable(RoutingTable[Model]):
    resource_type = "model"
    resource_class = Model
    api_name = "inference"
    route = "/v1/models"

    async def provider_register(self, provider, resource: Model) -> Model:
        registered = await provider.register_model(resource)
        return registered or resource

    async def provider_unregister(self, provider, resource: Model) -> None:
        await provider.unregister_model(resource)

    async def resolve_typed(self, model_id: str, model_type: str):
        model, provider = await self.resolve(model_id)
        if model.model_type != model_type:
            wanted = [m.identifier for m in await self.list() if m.model_type == model_type]
            raise BadRequestError(
                f"model '{model_id}' is an {model.model_type} model, but this call needs an {model_type} "
                f"model. "
                f"Registered {model_type} models: {', '.join(wanted) or 'none'}.",
                param="model",
            )
        return model, provider

    # -- the Models API ------------------------------------------------------------------------

    async def list_models(self, request: Empty) -> ListModelsResponse:
        return ListModelsResponse(data=[ModelEntry.of(m) for m in await self.list()])

    async def get_model(self, request: GetModelRequest) -> ModelEntry:
        return ModelEntry.of(await self.get(request.model_id))

    async def register_model(self, request: RegisterModelRequest, *, replace: bool = False) -> ModelEntry:
        """Register (idempotent for an identical definition); a different one is a 409 unless ``replace``.

        ``replace`` is for start-up: the run config is the source of truth for its own models.
        """
        provider_id = self.pick_provider(request.provider_id, request.model_id)
        existing = await self.registry.get(self.resource_type, request.model_id)
        model = Model(
            identifier=request.model_id,
            provider_resource_id=request.provider_model_id or request.model_id,
            provider_id=provider_id,
            model_type=request.model_type or "llm",
            metadata=request.metadata or {},
        )
        if existing is not None:
            model = model.model_copy(update={"created": existing.get("created", model.created)})
            if not replace and existing != model.model_dump(mode="json"):
                raise ConflictError(
                    f"model '{request.model_id}' is already registered differently (provider "
                    f"'{existing.get('provider_id')}', provider_model_id "
                    f"'{existing.get('provider_resource_id')}', "
                    f"model_type '{existing.get('model_type')}'); DELETE /v1/models/{request.model_id} first "
                    f"to change it",
                    param="model_id",
                )
        return ModelEntry.of(await self.add(model))

    async def unregister_model(self, request: GetModelRequest) -> None:
        await self.remove(request.model_id)

    async def openai_list_models(self, request: Empty) -> OpenAIListModelsResponse:
        return OpenAIListModelsResponse(data=[_openai(m) for m in await self.list()])

    async def openai_get_model(self, request: GetModelRequest) -> OpenAIModel:
        return _openai(await self.get(request.model_id))


def _openai(model: Model) -> OpenAIModel:
    return OpenAIModel(id=model.identifier, created=model.created, owned_by=model.provider_id)
