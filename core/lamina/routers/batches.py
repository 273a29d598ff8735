"""The batches router: every Batches route goes to one batches provider.

Batch ids carry no provider, so, as with Files and Agents, the first provider listed under
``providers.batches`` serves every route (a warning names the others, unused).
"""

from __future__ import annotations

from lamina.apis.batches import (
    BatchIdRequest,
    BatchObject,
    CreateBatchRequest,
    ListBatchesRequest,
    ListBatchesResponse,
)
from lamina.routers.single_provider import SingleProviderRouter


class BatchesRouter(SingleProviderRouter):
    api_name = "batches"

    async def create_batch(self, request: CreateBatchRequest) -> BatchObject:
        return await self.provider.create_batch(request)

    async def list_batches(self, request: ListBatchesRequest) -> ListBatchesResponse:
        return await self.provider.list_batches(request)

    async def retrieve_batch(self, request: BatchIdRequest) -> BatchObject:
        return await self.provider.retrieve_batch(request)

    async def cancel_batch(self, request: BatchIdRequest) -> BatchObject:
        return await self.provider.cancel_batch(request)
