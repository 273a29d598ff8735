"""The post-training router: every PostTraining route goes to one post-training provider.

Training jobs are named by the client's ``job_uuid``, which carries no provider, so, as with Batches and
Agents, the first provider listed under ``providers.post_training`` serves every route (a warning
names the others, unused).
"""

from __future__ import annotations

from lamina.apis.common import Empty
from lamina.apis.post_training import (
    JobUuidRequest,
    ListPostTrainingJobsResponse,
    PostTrainingJob,
    PostTrainingJobArtifactsResponse,
    PostTrainingJobStatusResponse,
    PreferenceOptimizeRequest,
    SupervisedFineTuneRequest,
)
from lamina.routers.single_provider import SingleProviderRouter


class PostTrainingRouter(SingleProviderRouter):
    api_name = "post_training"

    async def supervised_fine_tune(self, request: SupervisedFineTuneRequest) -> PostTrainingJob:
        return await self.provider.supervised_fine_tune(request)

    async def preference_optimize(self, request: PreferenceOptimizeRequest) -> PostTrainingJob:
        return await self.provider.preference_optimize(request)

    async def get_training_jobs(self, request: Empty) -> ListPostTrainingJobsResponse:
        return await self.provider.get_training_jobs()

    async def get_training_job_status(self, request: JobUuidRequest) -> PostTrainingJobStatusResponse:
        return await self.provider.get_training_job_status(request.job_uuid)

    async def cancel_training_job(self, request: JobUuidRequest) -> None:
        await self.provider.cancel_training_job(request.job_uuid)

    async def get_training_job_artifacts(self, request: JobUuidRequest) -> PostTrainingJobArtifactsResponse:
        return await self.provider.get_training_job_artifacts(request.job_uuid)
