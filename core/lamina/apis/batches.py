"""Batches: OpenAI's Batches API (Llama Stack 0.2.18+ serves it as the ``batches`` API).

A batch runs every line of a JSONL file of the Files API (purpose ``batch``) against one endpoint
(``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` or ``/v1/responses``) in the
background, and writes the answers to an output file and the failed lines to an error file
(purpose ``batch_output``). Served at ``/v1/openai/v1/batches...`` and the same routes at
``/v1/batches...``; the OpenAI SDK's ``client.batches`` drives them. docs/batches.md has the whole story.

Statuses: validating -> in_progress -> finalizing -> completed, or failed (the input file is
invalid: ``errors`` names each bad line), expired (not done within ``completion_window``: partial
output), cancelling -> cancelled (partial output).
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field, field_validator

from lamina.access.declarations import creates, lists, reads, updates
from lamina.apis.webmethod import webmethod

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]
FINISHED_STATUSES: frozenset[str] = frozenset({"failed", "completed", "expired", "cancelled"})

# The endpoints a batch runs, in both spellings a client may use, and the name each one goes by.
BATCH_ENDPOINTS: dict[str, str] = {
    "/v1/chat/completions": "/v1/chat/completions",
    "/v1/completions": "/v1/completions",
    "/v1/embeddings": "/v1/embeddings",
    "/v1/responses": "/v1/responses",
    "/v1/openai/v1/chat/completions": "/v1/chat/completions",
    "/v1/openai/v1/completions": "/v1/completions",
    "/v1/openai/v1/embeddings": "/v1/embeddings",
    "/v1/openai/v1/responses": "/v1/responses",
}
COMPLETION_WINDOWS = ("24h",)  # OpenAI's only value
MAX_METADATA_PAIRS = 16  # OpenAI's metadata limits
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


class BatchError(BaseModel):
    """One reason the batch failed: a bad line of the input file (``line`` counts from 1) or the file."""

    code: str | None = None
    message: str | None = None
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError] = Field(default_factory=list)


class BatchRequestCounts(BaseModel):
    total: int = 0
    completed: int = Field(default=0, description="Lines answered successfully (in the output file).")
    failed: int = Field(default=0, description="Lines whose request failed (in the error file).")


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class BatchUsage(BaseModel):
    """Tokens of the batch's successful lines, summed (chat and completion ``prompt_tokens`` count as input,
    ``completion_tokens`` as output; Responses' own names)."""

    input_tokens: int = 0
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int = 0


class BatchObject(BaseModel):
    """OpenAI's ``batch`` object. Times are Unix seconds."""

    id: str = Field(description="`batch_<32 hex>`.")
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts = Field(default_factory=BatchRequestCounts)
    metadata: dict[str, str] | None = None
    model: str | None = Field(default=None, description="The model every line names (null when they differ).")
    usage: BatchUsage | None = Field(default=None, description="Set when the batch ends.")


class OutputExpiresAfter(BaseModel):
    anchor: Literal["created_at"] = Field(description="Only `created_at`.")
    seconds: int = Field(ge=3600, le=30 * 24 * 3600, description="3600 (1 h) to 2592000 (30 d).")


class CreateBatchRequest(BaseModel):
    input_file_id: str = Field(min_length=1, description="A JSONL file uploaded with purpose `batch`.")
    endpoint: str = Field(
        description="Where every line goes: " + ", ".join(BATCH_ENDPOINTS) + " (each line's `url`)."
    )
    completion_window: str = Field(description="`24h`: a batch not done by then ends `expired`.")
    metadata: dict[str, str] | None = Field(
        default=None, description="Up to 16 pairs; keys up to 64 characters, values up to 512."
    )
    output_expires_after: OutputExpiresAfter | None = Field(
        default=None, description="When the output and error files expire (default: the files provider's)."
    )

    @field_validator("endpoint")
    @classmethod
    def _known_endpoint(cls, value: str) -> str:
        if value not in BATCH_ENDPOINTS:
            raise ValueError(
                f"{value!r} is not an endpoint a batch can run; use one of {', '.join(BATCH_ENDPOINTS)}"
            )
        return value

    @field_validator("completion_window")
    @classmethod
    def _known_window(cls, value: str) -> str:
        if value not in COMPLETION_WINDOWS:
            raise ValueError(f"{value!r} is not a completion window; the only one is '24h'")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > MAX_METADATA_PAIRS:
            raise ValueError(f"has {len(value)} pairs; at most {MAX_METADATA_PAIRS} are allowed")
        for key, item in value.items():
            if len(key) > MAX_METADATA_KEY:
                raise ValueError(f"key {key[:70]!r}... is longer than {MAX_METADATA_KEY} characters")
            if len(item) > MAX_METADATA_VALUE:
                raise ValueError(f"the value of {key!r} is longer than {MAX_METADATA_VALUE} characters")
        return value


class ListBatchesRequest(BaseModel):
    after: str | None = Field(default=None, description="A batch id: the page after it (a page's last_id).")
    limit: int = Field(default=20, ge=1, le=100, description="1 to 100, default 20.")


class ListBatchesResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class BatchIdRequest(BaseModel):
    batch_id: str = Field(min_length=1)


_BATCHES = "/v1/openai/v1/batches"


class Batches(Protocol):
    """OpenAI Batches: run a JSONL file of requests in the background; read the answers from files."""

    @webmethod(
        "POST",
        _BATCHES,
        aliases=("/v1/batches",),
        request=CreateBatchRequest,
        response=BatchObject,
        access=creates("batch", uses=(("file", "input_file_id"),)),
    )
    async def create_batch(self, request: CreateBatchRequest) -> BatchObject:
        """Create a batch from an uploaded JSONL file; it is validated and run in the background."""
        ...

    @webmethod(
        "GET",
        _BATCHES,
        aliases=("/v1/batches",),
        request=ListBatchesRequest,
        response=ListBatchesResponse,
        access=lists("batch"),
    )
    async def list_batches(self, request: ListBatchesRequest) -> ListBatchesResponse:
        """List batches, newest first; page with ``after`` (the previous page's ``last_id``)."""
        ...

    @webmethod(
        "GET",
        _BATCHES + "/{batch_id}",
        aliases=("/v1/batches/{batch_id}",),
        request=BatchIdRequest,
        response=BatchObject,
        access=reads("batch", "batch_id"),
    )
    async def retrieve_batch(self, request: BatchIdRequest) -> BatchObject:
        """Get a batch: its status, request counts and, once it ended, its output and error files."""
        ...

    @webmethod(
        "POST",
        _BATCHES + "/{batch_id}/cancel",
        aliases=("/v1/batches/{batch_id}/cancel",),
        request=BatchIdRequest,
        response=BatchObject,
        access=updates("batch", "batch_id"),
    )
    async def cancel_batch(self, request: BatchIdRequest) -> BatchObject:
        """Cancel a batch: the lines in flight stop, the finished ones go to a partial output file."""
        ...


class BatchesProvider(Protocol):
    """What a ``batches`` provider implements (with ``ProviderBase``'s lifecycle): the ``Batches`` methods.

    The batches router hands every call to one provider (the first listed under ``providers.batches``).
    The contract beyond the route shapes:

    - ``create_batch`` answers at once with ``status: validating``: an unknown ``input_file_id`` or a
      file whose purpose is not ``batch`` is a 400 naming ``input_file_id``; the file's lines are
      checked in the background (each a JSON object with ``custom_id`` unique in the file, ``method``
      ``POST``, ``url`` the batch's endpoint, ``body`` with ``model``); any bad line fails the batch
      with one ``errors`` entry per problem (``code``, ``message``, ``param``, ``line`` from 1).
    - A line whose request fails does not fail the batch: it goes to the error file with the status
      and error the endpoint would have answered, and counts in ``request_counts.failed``.
    - ``retrieve_batch`` / ``cancel_batch`` of an unknown id raise ``NotFoundError``; cancelling a
      batch that has ended raises ``ConflictError`` naming its status.
    - Work survives a restart: a batch resumes where it stopped and does not send a line it had
      finished again.
    """

    async def create_batch(self, request: CreateBatchRequest) -> BatchObject: ...

    async def list_batches(self, request: ListBatchesRequest) -> ListBatchesResponse: ...

    async def retrieve_batch(self, request: BatchIdRequest) -> BatchObject: ...

    async def cancel_batch(self, request: BatchIdRequest) -> BatchObject: ...


def canonical_endpoint(url: str) -> str | None:
    """The endpoint ``url`` names (``/v1/openai/v1/embeddings`` -> ``/v1/embeddings``), or None."""
    return BATCH_ENDPOINTS.get(url)
