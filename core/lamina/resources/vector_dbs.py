"""The vector DBs routing table: serves the VectorDBs API and resolves vector DB ids for Vector IO.

A vector DB is registered with one ``vector_io`` provider and one registered embedding model; its
``embedding_dimension`` is the model's ``metadata.embedding_dimension`` (a request naming another
dimension is refused). Registrations are persisted in the registry like models, and the stack hands
every persisted vector DB to its provider again at start-up (``reopen``) so the provider can reopen
its storage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from lamina.apis.common import Empty
from lamina.apis.vector_io import (
    GetVectorDBRequest,
    ListVectorDBsResponse,
    RegisterVectorDBRequest,
    VectorDB,
)
from lamina.errors import BadRequestError, ConflictError, NotFoundError
from lamina.plugins import PluginManager
from lamina.resources.models import ModelsRoutingTable
from lamina.resources.registry import ResourceRegistry
from lamina.resources.routing_table import RoutingTable

log = structlog.get_logger(__name__)


class VectorDBsRoutingTable(RoutingTable[VectorDB]):
    resource_type = "vector_db"
    reopen_with = "register_vector_db"
    resource_class = VectorDB
    api_name = "vector_io"
    route = "/v1/vector-dbs"

    def __init__(
        self,
        registry: ResourceRegistry,
        providers: dict[str, Any],
        pm: PluginManager,
        models: ModelsRoutingTable,
    ) -> None:
        super().__init__(registry, providers, pm)
        self.models = models
        # Checks run before DELETE /v1/vector-dbs/{id}; one raises to keep a vector DB that something
        # above this table owns (the OpenAI vector store it backs).
        self.unregister_guards: list[Callable[[str], Awaitable[None]]] = []

    async def provider_register(self, provider: Any, resource: VectorDB) -> VectorDB:
        await provider.register_vector_db(resource)
        return resource

    async def provider_unregister(self, provider: Any, resource: VectorDB) -> None:
        await provider.unregister_vector_db(resource)

    # -- the VectorDBs API ---------------------------------------------------------------------

    async def list_vector_dbs(self, request: Empty) -> ListVectorDBsResponse:
        return ListVectorDBsResponse(data=await self.list())

    async def get_vector_db(self, request: GetVectorDBRequest) -> VectorDB:
        return await self.get(request.vector_db_id)

    async def register_vector_db(self, request: RegisterVectorDBRequest) -> VectorDB:
        """Register (idempotent for an identical definition; a different one is a 409)."""
        dimension = await self._embedding_dimension(request)
        provider_id = self.pick_provider(request.provider_id, request.vector_db_id)
        vector_db = VectorDB(
            identifier=request.vector_db_id,
            provider_resource_id=request.provider_vector_db_id or request.vector_db_id,
            provider_id=provider_id,
            embedding_model=request.embedding_model,
            embedding_dimension=dimension,
            vector_db_name=request.vector_db_name,
        )
        existing = await self.registry.get(self.resource_type, request.vector_db_id)
        if existing is not None:
            vector_db = vector_db.model_copy(update={"created": existing.get("created", vector_db.created)})
            if existing != vector_db.model_dump(mode="json"):
                raise ConflictError(
                    f"vector DB '{request.vector_db_id}' is already registered differently (provider "
                    f"'{existing.get('provider_id')}', embedding_model '{existing.get('embedding_model')}', "
                    f"embedding_dimension {existing.get('embedding_dimension')}, provider_vector_db_id "
                    f"'{existing.get('provider_resource_id')}'); DELETE "
                    f"/v1/vector-dbs/{request.vector_db_id} first to change it (that drops its chunks)",
                    param="vector_db_id",
                )
            return vector_db  # identical: already prepared at the provider
        return await self.add(vector_db)

    async def unregister_vector_db(self, request: GetVectorDBRequest) -> None:
        for guard in self.unregister_guards:
            await guard(request.vector_db_id)
        await self.remove(request.vector_db_id)

    async def _embedding_dimension(self, request: RegisterVectorDBRequest) -> int:
        """The embedding model's dimension, after checking the model and the requested dimension."""
        try:
            model = await self.models.get(request.embedding_model)
        except NotFoundError:
            raise BadRequestError(
                f"embedding_model '{request.embedding_model}' is not a registered model. "
                f"Registered embedding models: {await self._embedders_listed()}.",
                param="embedding_model",
            ) from None
        if model.model_type != "embedding":
            raise BadRequestError(
                f"embedding_model '{request.embedding_model}' is an {model.model_type} model, not an "
                f"embedding model. Registered embedding models: {await self._embedders_listed()}.",
                param="embedding_model",
            )
        dimension = model.embedding_dimension
        if dimension is None:  # the Models API refuses this, but a hand-edited registry might not
            raise BadRequestError(
                f"embedding_model '{request.embedding_model}' has no metadata.embedding_dimension; "
                f"re-register it with one",
                param="embedding_model",
            )
        if request.embedding_dimension is not None and request.embedding_dimension != dimension:
            raise BadRequestError(
                f"embedding_dimension {request.embedding_dimension} does not match embedding_model "
                f"'{request.embedding_model}', whose embeddings have {dimension} dimensions; send "
                f"{dimension} or omit embedding_dimension",
                param="embedding_dimension",
            )
        return dimension

    async def _embedders_listed(self) -> str:
        """The registered embedding models, for error messages (a registry scan: errors only)."""
        embedders = [m for m in await self.models.list() if m.model_type == "embedding"]
        return ", ".join(f"{m.identifier} ({m.embedding_dimension} dims)" for m in embedders) or "none"
