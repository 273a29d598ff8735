"""The datasets routing table: serves the Datasets API and resolves dataset ids for DatasetIO.

A dataset is registered with one ``datasetio`` provider, which checks at registration that it can
read the source. The provider is the one the request names (``provider_id``, else
``metadata.provider_id`` as in Llama Stack), else the one for the source: a ``huggingface://`` URI
goes to a ``remote::huggingface`` provider, anything else to ``inline::localfs``, and with a single
provider configured, to it. Registrations are persisted in the registry; at start-up every persisted
dataset is handed to its provider again (``reopen``).
"""

from __future__ import annotations

import uuid

import structlog

from lamina.access.owners import record_for_caller
from lamina.apis.common import Empty
from lamina.apis.datasets import (
    Dataset,
    GetDatasetRequest,
    ListDatasetsResponse,
    RegisterDatasetRequest,
)
from lamina.errors import BadRequestError, ConflictError
from lamina.plugins import PluginManager
from lamina.resources.registry import ResourceRegistry
from lamina.resources.routing_table import RoutingTable

log = structlog.get_logger(__name__)

HUGGINGFACE_SCHEME = "huggingface://"


class DatasetsRoutingTable(RoutingTable[Dataset]):
    resource_type = "dataset"
    reopen_with = "register_dataset"
    resource_class = Dataset
    api_name = "datasetio"
    route = "/v1/datasets"

    def __init__(
        self,
        registry: ResourceRegistry,
        providers: dict[str, object],
        pm: PluginManager,
        provider_types: dict[str, str] | None = None,
    ) -> None:
        super().__init__(registry, providers, pm)
        self.provider_types = provider_types or {}  # provider_id -> provider_type, in run-config order

    async def provider_register(self, provider, resource: Dataset) -> Dataset:
        await provider.register_dataset(resource)
        return resource

    async def provider_unregister(self, provider, resource: Dataset) -> None:
        await provider.unregister_dataset(resource)

    def provider_for(self, request: RegisterDatasetRequest, dataset_id: str) -> str:
        """The provider that serves a new dataset (see the module docstring)."""
        named = request.provider_id or (request.metadata or {}).get("provider_id")
        if named is not None:
            return self.pick_provider(str(named), dataset_id)
        if len(self.providers) <= 1:
            return self.pick_provider(None, dataset_id)
        source = request.source
        wanted = (
            "remote::huggingface"
            if source.type == "uri" and source.uri.startswith(HUGGINGFACE_SCHEME)
            else "inline::localfs"
        )
        for provider_id, provider_type in self.provider_types.items():
            if provider_type == wanted and provider_id in self.providers:
                return provider_id
        raise BadRequestError(
            f"no {wanted} provider is configured to read dataset '{dataset_id}' from a "
            f"{source.type} source, and several datasetio providers are "
            f"({', '.join(sorted(self.providers))}); "
            f"name one in provider_id (or metadata.provider_id)",
            param="provider_id",
        )

    # -- the Datasets API ----------------------------------------------------------------------

    async def list_datasets(self, request: Empty) -> ListDatasetsResponse:
        return ListDatasetsResponse(data=await self.list())

    async def get_dataset(self, request: GetDatasetRequest) -> Dataset:
        return await self.get(request.dataset_id)

    async def register_dataset(self, request: RegisterDatasetRequest, *, replace: bool = False) -> Dataset:
        """Register a dataset: idempotent for an identical definition; a different one under the same
        id is a 409 (``replace``: the run config's definition wins over a persisted one)."""
        dataset_id = request.dataset_id or f"dataset-{uuid.uuid4()}"  # Llama Stack's generated form
        provider_id = self.provider_for(request, dataset_id)
        dataset = Dataset(
            identifier=dataset_id,
            provider_resource_id=dataset_id,
            provider_id=provider_id,
            purpose=request.purpose,
            source=request.source,
            metadata=request.metadata or {},
        )
        existing = await self.registry.get(self.resource_type, dataset_id)
        if existing is not None:
            dataset = dataset.model_copy(update={"created": existing.get("created", dataset.created)})
            if existing == dataset.model_dump(mode="json"):
                return dataset  # identical: the provider was handed it at start-up
            if not replace:
                raise ConflictError(
                    f"dataset '{dataset_id}' is already registered differently (provider "
                    f"'{existing.get('provider_id')}', purpose '{existing.get('purpose')}', source type "
                    f"'{(existing.get('source') or {}).get('type')}'); DELETE /v1/datasets/{dataset_id} "
                    f"first to change it",
                    param="dataset_id",
                )
            await self.remove(dataset_id)  # the provider drops what it kept for the old definition
        added = await self.add(dataset)
        await record_for_caller("dataset", dataset_id)  # a job's results dataset is its submitter's
        return added

    async def unregister_dataset(self, request: GetDatasetRequest) -> None:
        await self.remove(request.dataset_id)
