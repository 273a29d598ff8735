"""Files: the OpenAI Files API (upload, list, retrieve, content, delete), as Llama Stack 0.2.12 serves it.

Every route is served at ``/v1/openai/v1/files...`` (where llama-stack-client 0.2.12 and the OpenAI
SDK with ``base_url=<server>/v1/openai/v1`` send it) and at ``/v1/files...`` (the OpenAI SDK with
``base_url=<server>/v1``). Uploads are ``multipart/form-data`` with the fields ``purpose`` (and
optionally ``expires_after[anchor]`` / ``expires_after[seconds]``) followed by the ``file`` part,
which streams to the provider as it arrives (see ``lamina.apis.binary``).
"""

from __future__ import annotations

from typing import Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field

from lamina.access.declarations import creates, deletes, lists, reads
from lamina.apis.binary import BinaryResponse, UploadFile
from lamina.apis.webmethod import webmethod

# What a client may upload a file for.
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
UPLOAD_PURPOSES: tuple[str, ...] = get_args(UploadPurpose)
# What a stored file may be for: the upload purposes, and the server's own output (a batch's output and
# error files are ``batch_output``, as OpenAI's; a client cannot upload one).
FilePurpose = Literal["assistants", "batch", "batch_output", "fine-tune", "vision", "user_data", "evals"]
FILE_PURPOSES: tuple[str, ...] = get_args(FilePurpose)
Order = Literal["asc", "desc"]

MIN_EXPIRES_AFTER = 3600  # OpenAI's bounds for expires_after.seconds: 1 hour ..
MAX_EXPIRES_AFTER = 30 * 24 * 3600  # .. 30 days


class OpenAIFileObject(BaseModel):
    """A stored file, as OpenAI's ``file`` object (``status`` is always ``processed``)."""

    object: Literal["file"] = "file"
    id: str = Field(description="The file id, `file-<hex>`.")
    bytes: int = Field(description="Size in bytes.")
    created_at: int = Field(description="Unix time (s) of the upload.")
    expires_at: int | None = Field(default=None, description="Unix time (s) after which the file is gone.")
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"] = "processed"


class ListOpenAIFileResponse(BaseModel):
    data: list[OpenAIFileObject]
    has_more: bool
    first_id: str = Field(description="The first listed id ('' when the page is empty).")
    last_id: str = Field(description="The last listed id: pass it as `after` for the next page.")
    object: Literal["list"] = "list"


class OpenAIFileDeleteResponse(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class ExpiresAfter(BaseModel):
    anchor: Literal["created_at"] = Field(description="Only `created_at`.")
    seconds: int = Field(
        ge=MIN_EXPIRES_AFTER, le=MAX_EXPIRES_AFTER, description="3600 (1 h) to 2592000 (30 d)."
    )


class UploadFileRequest(BaseModel):
    """The multipart form of an upload: ``purpose`` (and ``expires_after``) first, then ``file``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    purpose: UploadPurpose = Field(description="One of " + ", ".join(UPLOAD_PURPOSES) + ".")
    expires_after: ExpiresAfter | None = Field(
        default=None,
        description="Form fields expires_after[anchor] and expires_after[seconds]; "
        "default: the provider's ttl_secs.",
    )
    file: UploadFile = Field(description="The file's bytes: a file part, the last part of the form.")


class StoreFileRequest(UploadFileRequest):
    """A file the server stores itself (a batch's output file): any purpose, ``batch_output`` too. Not a
    route's request; callers in the server hand it to ``openai_upload_file`` like an upload."""

    purpose: FilePurpose = Field(description="One of " + ", ".join(FILE_PURPOSES) + ".")


class ListFilesRequest(BaseModel):
    after: str | None = Field(default=None, description="A file id: list the files after it.")
    limit: int = Field(default=10000, ge=1, le=10000, description="1 to 10000, default 10000.")
    order: Order = Field(default="desc", description="By created_at: `asc` or `desc` (default).")
    purpose: FilePurpose | None = Field(default=None, description="Only the files of this purpose.")


class FileIdRequest(BaseModel):
    file_id: str = Field(min_length=1)


class Files(Protocol):
    """OpenAI Files: upload (multipart, streamed), list, retrieve, download and delete files."""

    @webmethod(
        "POST",
        "/v1/openai/v1/files",
        aliases=("/v1/files",),
        request=UploadFileRequest,
        response=OpenAIFileObject,
        multipart=True,
        access=creates("file"),
    )
    async def openai_upload_file(self, request: UploadFileRequest) -> OpenAIFileObject:
        """Upload a file (multipart: `purpose`, then the `file` part, streamed to storage)."""
        ...

    @webmethod(
        "GET",
        "/v1/openai/v1/files",
        aliases=("/v1/files",),
        request=ListFilesRequest,
        response=ListOpenAIFileResponse,
        access=lists("file"),
    )
    async def openai_list_files(self, request: ListFilesRequest) -> ListOpenAIFileResponse:
        """List files, newest first by default; page with `after` (the previous page's `last_id`)."""
        ...

    @webmethod(
        "GET",
        "/v1/openai/v1/files/{file_id}",
        aliases=("/v1/files/{file_id}",),
        request=FileIdRequest,
        response=OpenAIFileObject,
        access=reads("file", "file_id"),
    )
    async def openai_retrieve_file(self, request: FileIdRequest) -> OpenAIFileObject:
        """Get a file's metadata."""
        ...

    @webmethod(
        "DELETE",
        "/v1/openai/v1/files/{file_id}",
        aliases=("/v1/files/{file_id}",),
        request=FileIdRequest,
        response=OpenAIFileDeleteResponse,
        access=deletes("file", "file_id"),
    )
    async def openai_delete_file(self, request: FileIdRequest) -> OpenAIFileDeleteResponse:
        """Delete a file (its bytes and metadata); every route then answers 404 for it."""
        ...

    @webmethod(
        "GET",
        "/v1/openai/v1/files/{file_id}/content",
        aliases=("/v1/files/{file_id}/content",),
        request=FileIdRequest,
        binary=True,
        access=reads("file", "file_id"),
    )
    async def openai_retrieve_file_content(self, request: FileIdRequest) -> BinaryResponse:
        """Download a file's bytes (its Content-Type, as an attachment named after the file)."""
        ...


class FilesProvider(Protocol):
    """What a ``files`` provider implements (with ``ProviderBase``'s lifecycle): the ``Files`` methods.

    ``lamina.testing.conformance.FilesConformance`` checks it.

    The files router hands every call to one provider (see ``lamina.routers.files``) with the
    validated request model. The contract beyond the route shapes:

    - ``openai_upload_file``: ``request.file`` is an ``UploadFile`` still on the socket. Iterate it
      (``async for chunk in request.file``) and write each chunk before asking for the next: never
      hold the whole file in memory, and never block the event loop on disk or network I/O (offload
      writes to a thread). Enforce the provider's size limit while reading: past it, raise
      ``PayloadTooLargeError`` naming the limit, and remove what was written. A file is listed only
      once it is complete (write it aside, then publish it), so a crash mid-upload leaves nothing
      listed; clean up leftovers at start-up. Ids look like ``file-<32 hex>``. ``filename`` is the
      part's filename (``"upload"`` when absent); ``expires_at`` follows ``request.expires_after``,
      else the provider's default.
    - ``openai_list_files``: keyset paging by (``created_at``, ``id``) in ``order``; ``after`` names
      a file id (an unknown one is a 400 naming ``after``); ``has_more`` tells whether a next page
      exists. Expired files are never listed.
    - ``openai_retrieve_file`` / ``openai_delete_file`` / ``openai_retrieve_file_content``: an
      unknown, deleted or expired id raises ``NotFoundError``. The content is a ``BinaryResponse``
      (a ``path`` on local disk, or ``chunks``) with the file's content type and ``filename``.
    """

    async def openai_upload_file(self, request: UploadFileRequest) -> OpenAIFileObject: ...

    async def openai_list_files(self, request: ListFilesRequest) -> ListOpenAIFileResponse: ...

    async def openai_retrieve_file(self, request: FileIdRequest) -> OpenAIFileObject: ...

    async def openai_delete_file(self, request: FileIdRequest) -> OpenAIFileDeleteResponse: ...

    async def openai_retrieve_file_content(self, request: FileIdRequest) -> BinaryResponse: ...
