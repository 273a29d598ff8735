"""The synthetic data generation router: every route goes to one provider (the first listed under
``providers.synthetic_data_generation``)."""

from __future__ import annotations

from lamina.apis.jobs import Job
from lamina.apis.synthetic_data_generation import (
    SyntheticDataGenerationJobRequest,
    SyntheticDataGenerationRequest,
    SyntheticDataGenerationResponse,
)
from lamina.routers.single_provider import SingleProviderRouter


class SyntheticDataGenerationRouter(SingleProviderRouter):
    api_name = "synthetic_data_generation"

    async def synthetic_data_generate(
        self, request: SyntheticDataGenerationRequest
    ) -> SyntheticDataGenerationResponse:
        return await self.provider.synthetic_data_generate(request)

    async def synthetic_data_generate_job(self, request: SyntheticDataGenerationJobRequest) -> Job:
        return await self.provider.synthetic_data_generate_job(request)
