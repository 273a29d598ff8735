"""The models routing table: serves the Models API and resolves model ids for inference."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic_core import to_jsonable_python

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
from lamina.errors import BadRequestError, ConflictError, LaminaError, NotFoundError, ServiceUnavailableError
from lamina.resources.routing_table import RoutingTable

log = structlog.get_logger(__name__)

# metadata.source of a model registered because its provider's list_models() listed it.
LISTED = "listed_from_provider"


@dataclass
class SyncResult:
    """What one ``sync_listed`` changed (identifiers)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class ModelsRoutingTable(RoutingTable[Model]):
    resource_type = "model"
    resource_class = Model
    api_name = "inference"
    route = "/v1/models"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sync_locks: dict[str, asyncio.Lock] = {}  # provider_id -> one sync at a time
        self.health: Any = None  # the stack's HealthMonitor (lamina.provider_health), when serving

    async def get(self, identifier: str) -> Model:
        """A run-config model still waiting on its (down) provider is a 503 naming the provider and
        why, not a 404 telling the user to register a model their config names."""
        try:
            return await super().get(identifier)
        except NotFoundError:
            waiting = self.health.pending("models", identifier) if self.health is not None else None
            if waiting is None:
                raise
            provider_id, pending = waiting
            raise ServiceUnavailableError(
                f"model '{identifier}' ({pending.where} in the run config) is not registered yet: provider "
                f"'{provider_id}' refused it at start-up ({pending.error}). It is retried in the background; "
                f"GET /v1/providers/{provider_id} shows the provider's state.",
                retry_after=5,
            ) from None

    async def provider_register(self, provider, resource: Model) -> Model:
        registered = await provider.register_model(resource)
        return registered or resource

    async def provider_unregister(self, provider, resource: Model) -> None:
        await provider.unregister_model(resource)

    # -- models a provider lists ----------------------------------------------------------------

    async def sync_listed(self, provider_id: str, models: list[Model]) -> SyncResult:
        """Make the models registered from ``provider_id``'s listing match ``models`` (its backend's).

        Registers each listed model not registered yet (``metadata.source`` set to ``LISTED``),
        re-registers listed ones whose ``model_type`` or metadata changed, and unregisters models
        this provider listed before that it no longer lists. An identifier registered otherwise (run
        config, API, another provider) wins and is never touched. A model the provider refuses in
        ``register_model`` is logged and skipped.
        """
        async with self._sync_locks.setdefault(provider_id, asyncio.Lock()):
            return await self._sync_listed(provider_id, models)

    async def _sync_listed(self, provider_id: str, models: list[Model]) -> SyncResult:
        result = SyncResult()
        wanted: dict[str, Model] = {}
        for model in models:
            if model.identifier not in wanted:
                wanted[model.identifier] = model
        for identifier, model in wanted.items():
            metadata = to_jsonable_python({**model.metadata, "source": LISTED})
            existing = await self.registry.get(self.resource_type, identifier)
            if existing is not None:
                if existing.get("provider_id") != provider_id or not _listed(existing):
                    continue  # registered by the run config, a user or another provider: theirs
                if (existing.get("model_type"), existing.get("metadata")) == (model.model_type, metadata):
                    continue
            request = RegisterModelRequest(
                model_id=identifier,
                provider_id=provider_id,
                provider_model_id=model.provider_resource_id or identifier,
                model_type=model.model_type,
                metadata=metadata,
            )
            try:
                await self.register_model(request, replace=True)
            except LaminaError as exc:
                log.warning(
                    "listed_model_not_registered",
                    provider_id=provider_id,
                    model=identifier,
                    error=exc.message,
                )
                result.failed.append(identifier)
                continue
            (result.updated if existing is not None else result.added).append(identifier)
        for doc in await self.registry.list(self.resource_type):
            identifier = doc.get("identifier")
            if doc.get("provider_id") != provider_id or not _listed(doc) or identifier in wanted:
                continue
            try:
                await self.remove(identifier)
            except LaminaError as exc:
                log.warning(
                    "listed_model_not_removed", provider_id=provider_id, model=identifier, error=exc.message
                )
                result.failed.append(identifier)
                continue
            result.removed.append(identifier)
        if result.added or result.updated or result.removed or result.failed:
            log.info(
                "listed_models_synced",
                provider_id=provider_id,
                listed=len(wanted),
                added=result.added,
                updated=result.updated,
                removed=result.removed,
                failed=result.failed,
            )
        return result

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


def _listed(doc: dict) -> bool:
    return (doc.get("metadata") or {}).get("source") == LISTED


def _openai(model: Model) -> OpenAIModel:
    return OpenAIModel(id=model.identifier, created=model.created, owned_by=model.provider_id)
