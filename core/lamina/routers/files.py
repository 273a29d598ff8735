"""The files router: every Files route goes to one files provider.

One files provider is the usual setup. When the run config lists several under
``providers.files``, the first one listed serves every route and the others are not used (a
warning says so at start-up): file ids carry no provider, and one listing must page over one store.
"""

from __future__ import annotations

from lamina.access.owners import record_for_caller
from lamina.apis.binary import BinaryResponse
from lamina.apis.files import (
    FileIdRequest,
    ListFilesRequest,
    ListOpenAIFileResponse,
    OpenAIFileDeleteResponse,
    OpenAIFileObject,
    UploadFileRequest,
)
from lamina.routers.single_provider import SingleProviderRouter


class FilesRouter(SingleProviderRouter):
    api_name = "files"

    async def openai_upload_file(self, request: UploadFileRequest) -> OpenAIFileObject:
        stored = await self.provider.openai_upload_file(request)
        await record_for_caller("file", stored.id)  # a job's file (a batch's output): its submitter's
        return stored

    async def openai_list_files(self, request: ListFilesRequest) -> ListOpenAIFileResponse:
        return await self.provider.openai_list_files(request)

    async def openai_retrieve_file(self, request: FileIdRequest) -> OpenAIFileObject:
        return await self.provider.openai_retrieve_file(request)

    async def openai_delete_file(self, request: FileIdRequest) -> OpenAIFileDeleteResponse:
        return await self.provider.openai_delete_file(request)

    async def openai_retrieve_file_content(self, request: FileIdRequest) -> BinaryResponse:
        return await self.provider.openai_retrieve_file_content(request)
