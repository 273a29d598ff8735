"""The files router: every Files route goes to one files provider.

One files provider is the usual setup. When the run config lists several under
``providers.files``, the first one listed serves every route and the others are not used (a
warning says so at start-up): file ids carry no provider, and one listing must page over one store.
"""

from __future__ import annotations

from typing import Any

import structlog

from lamina.apis.binary import BinaryResponse
from lamina.apis.files import (
    FileIdRequest,
    ListFilesRequest,
    ListOpenAIFileResponse,
    OpenAIFileDeleteResponse,
    OpenAIFileObject,
    UploadFileRequest,
)
from lamina.errors import ServiceUnavailableError

log = structlog.get_logger(__name__)


class FilesRouter:
    def __init__(self, impls: dict[str, Any], order: list[str] | None = None) -> None:
        self.impls = impls  # provider_id -> provider; filled as providers start
        self.order = order or []  # provider ids in run-config order
        self._warned = False

    @property
    def provider(self) -> Any:
        ids = [pid for pid in self.order if pid in self.impls] or list(self.impls)
        if not ids:
            raise ServiceUnavailableError("no files provider has started; add one under providers.files")
        if len(ids) > 1 and not self._warned:
            self._warned = True
            log.warning("files_providers_unused", serving=ids[0], unused=ids[1:])
        return self.impls[ids[0]]

    async def openai_upload_file(self, request: UploadFileRequest) -> OpenAIFileObject:
        return await self.provider.openai_upload_file(request)

    async def openai_list_files(self, request: ListFilesRequest) -> ListOpenAIFileResponse:
        return await self.provider.openai_list_files(request)

    async def openai_retrieve_file(self, request: FileIdRequest) -> OpenAIFileObject:
        return await self.provider.openai_retrieve_file(request)

    async def openai_delete_file(self, request: FileIdRequest) -> OpenAIFileDeleteResponse:
        return await self.provider.openai_delete_file(request)

    async def openai_retrieve_file_content(self, request: FileIdRequest) -> BinaryResponse:
        return await self.provider.openai_retrieve_file_content(request)
