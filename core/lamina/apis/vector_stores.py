"""OpenAI vector stores: named collections of files, chunked, embedded and searchable.

Served at ``/v1/openai/v1/vector_stores...`` (llama-stack-client 0.2.12, and the OpenAI SDK with
``base_url=<server>/v1/openai/v1``) and at ``/v1/vector_stores...`` (the OpenAI SDK with
``base_url=<server>/v1``). The logic lives once, in the core (``lamina.routers.vector_stores``):
Vector IO providers stay plain chunk stores.

- A vector store is backed by a VectorDB of the same id (``vs_<32 hex>``) registered through the
  vector DBs routing table, so it is also listed by ``GET /v1/vector-dbs``. ``embedding_model``
  defaults to the first embedding model ``GET /v1/models`` lists (models are ordered by identifier),
  as Llama Stack picks its first embedding model; ``embedding_dimension`` defaults to that model's.
  ``provider_id`` is needed when several Vector IO providers are configured.
- Attaching a file starts its ingestion in the background (at most ``INGEST_CONCURRENCY`` files at a
  time) and waits for it up to ``vector_stores.ingestion_wait_seconds`` of the run config (default
  10): a file done by then answers ``completed`` (or ``failed``), a bigger one ``in_progress`` (poll
  it; the ingestion goes on even when the client goes away). ``create`` with ``file_ids`` waits the
  same way, so its ``file_counts`` are final for ordinary files. Ingestion reads the file through the
  Files API, extracts its text (``lamina.providers.documents``: text, markdown, HTML, JSON, CSV,
  PDF), cuts it into token windows (``chunking_strategy``), and inserts them through the Vector IO
  router, which embeds them. The file then is ``completed``, or ``failed`` with
  ``last_error {code: server_error, message}`` (file not found, unreadable, no text, ...). Files
  left ``in_progress`` by a stop are ingested again at the next start. File batches:
  ``lamina.apis.vector_store_file_batches``.
- Chunks carry ``file_id``, ``filename``, ``document_id`` (the file id), ``chunk_index`` and the
  file's ``attributes`` (as attached) in their metadata. Search filters and returns the file's
  *current* attributes (``POST .../files/{file_id}`` changes them at once, without re-ingesting).
- ``file_counts`` and ``status`` (``in_progress`` while a file is, ``expired`` once ``expires_at``
  has passed, else ``completed``) are computed from the files; ``usage_bytes`` is the UTF-8 size of
  the text extracted from the store's completed files.
- ``expires_after {anchor: last_active_at, days}`` sets ``expires_at = last_active_at + days``.
  ``last_active_at`` moves on create, update, search and file attach. An expired store is still
  listed, retrieved and deleted, but searching it or attaching files is a 400; updating it (any
  field) makes it active again.
- Search: ``query`` (a list is joined with spaces), ``max_num_results`` 1..50 (default 10),
  ``filters`` (OpenAI's comparison ``eq ne gt gte lt lte in nin`` on a file attribute, and compound
  ``and``/``or``; a file lacking the key does not match; ``{key: value, ...}`` without ``type``, as
  Llama Stack's tests send, means every pair equal), ``ranking_options.score_threshold``
  (default 0.0, as Llama Stack) and ``ranker`` (``auto``, ``default-2024-11-15`` or ``none``: all
  rank by the search mode's score). ``search_mode`` (``vector``, the default, ``keyword`` or
  ``hybrid``) is a Lamina extension, as later Llama Stack versions have it. ``rewrite_query: true``
  only normalises the query (whitespace collapsed, trimmed): no model rewrites it, and
  ``search_query`` in the answer shows what was searched. ``has_more`` says whether more results
  follow; send ``next_page`` back as ``page`` (same search) for them.
- Chunks inserted with ``POST /v1/vector-io/insert`` into a store's id are searched too, with their
  metadata as ``attributes`` (see ``lamina.routers.vector_store_search``).
- State (stores, their files, extracted text) lives in the metadata store (``metadata_store``), so a
  restart keeps every store and file; chunks live at the Vector IO provider.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lamina.access.declarations import creates, deletes, lists, reads, updates
from lamina.apis.webmethod import webmethod

DEFAULT_CHUNK_TOKENS = 800  # OpenAI's "auto" (and static default): 800-token windows...
DEFAULT_OVERLAP_TOKENS = 400  # ...overlapping by 400
MIN_CHUNK_TOKENS, MAX_CHUNK_TOKENS = 100, 4096
MAX_ATTRIBUTES = 16  # OpenAI: at most 16 attributes (and 16 metadata keys), keys at most 64 characters
MAX_KEY_CHARS = 64
MAX_ATTRIBUTE_CHARS = 512
MAX_FILTER_DEPTH = 8
COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
VectorStoreFileStatus = Literal["completed", "in_progress", "cancelled", "failed"]
Order = Literal["asc", "desc"]


class StaticChunking(BaseModel):
    max_chunk_size_tokens: int = DEFAULT_CHUNK_TOKENS
    chunk_overlap_tokens: int = DEFAULT_OVERLAP_TOKENS


class ChunkingStrategyAuto(BaseModel):
    type: Literal["auto"] = "auto"


class ChunkingStrategyStatic(BaseModel):
    type: Literal["static"] = "static"
    static: StaticChunking


ChunkingStrategy = ChunkingStrategyAuto | ChunkingStrategyStatic


def parse_chunking_strategy(value: Any) -> ChunkingStrategy | None:
    """``auto`` or ``static {max_chunk_size_tokens 100..4096, chunk_overlap_tokens 0..max/2}``.

    A static strategy without ``chunk_overlap_tokens`` overlaps by min(400, max_chunk_size_tokens / 2).
    Raises ValueError naming the field (pydantic reports it under ``chunking_strategy``).
    """
    if value is None or isinstance(value, ChunkingStrategyAuto | ChunkingStrategyStatic):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"chunking_strategy must be an object, got {type(value).__name__}")
    kind = value.get("type")
    if kind == "auto":
        return ChunkingStrategyAuto()
    if kind != "static":
        raise ValueError(f"chunking_strategy.type must be 'auto' or 'static', got {kind!r}")
    static = value.get("static")
    if not isinstance(static, dict):
        raise ValueError("chunking_strategy.static is required for type 'static' (an object)")
    size = static.get("max_chunk_size_tokens", DEFAULT_CHUNK_TOKENS)
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS
    ):
        raise ValueError(
            f"chunking_strategy.static.max_chunk_size_tokens must be an integer from {MIN_CHUNK_TOKENS} "
            f"to {MAX_CHUNK_TOKENS}, got {size!r}"
        )
    overlap = static.get("chunk_overlap_tokens", min(DEFAULT_OVERLAP_TOKENS, size // 2))
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= size // 2:
        raise ValueError(
            f"chunking_strategy.static.chunk_overlap_tokens must be an integer from 0 to half of "
            f"max_chunk_size_tokens ({size // 2}), got {overlap!r}"
        )
    return ChunkingStrategyStatic(
        static=StaticChunking(max_chunk_size_tokens=size, chunk_overlap_tokens=overlap)
    )


def chunk_sizes(strategy: ChunkingStrategy | None) -> tuple[int, int]:
    """(window, overlap) in tokens."""
    if isinstance(strategy, ChunkingStrategyStatic):
        return strategy.static.max_chunk_size_tokens, strategy.static.chunk_overlap_tokens
    return DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS


def check_attributes(value: Any, field: str = "attributes") -> dict[str, Any] | None:
    """OpenAI's limits: at most 16 keys of <= 64 characters; values strings (<= 512), numbers, booleans."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be an object, got {type(value).__name__}")
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"{field} has {len(value)} keys; at most {MAX_ATTRIBUTES} are allowed")
    for key, item in value.items():
        if len(key) > MAX_KEY_CHARS:
            raise ValueError(f"{field}: key {key[:20]!r}... is longer than {MAX_KEY_CHARS} characters")
        if not isinstance(item, str | int | float | bool):
            raise ValueError(f"{field}.{key} must be a string, number or boolean, got {type(item).__name__}")
        if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_CHARS:
            raise ValueError(f"{field}.{key} is longer than {MAX_ATTRIBUTE_CHARS} characters")
    return value


def check_filter(value: Any, field: str = "filters", depth: int = 0) -> dict[str, Any]:
    """An OpenAI filter: ``{type: eq|ne|gt|gte|lt|lte|in|nin, key, value}`` or ``{type: and|or, filters}``.

    An object without ``type`` is the shorthand Llama Stack's tests send, ``{key: value, ...}``: every
    pair must match (returned as the ``and`` of ``eq`` filters it stands for).
    """
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be an object, got {type(value).__name__}")
    if depth > MAX_FILTER_DEPTH:
        raise ValueError(f"{field}: filters are nested more than {MAX_FILTER_DEPTH} levels deep")
    if "type" not in value:
        return _shorthand_filter(value, field)
    kind = value.get("type")
    if kind in ("and", "or"):
        subs = value.get("filters")
        if not isinstance(subs, list) or not subs:
            raise ValueError(f"{field}.filters must be a non-empty list of filters for type {kind!r}")
        for i, sub in enumerate(subs):
            check_filter(sub, f"{field}.filters[{i}]", depth + 1)
        return value
    if kind not in COMPARISONS:
        raise ValueError(
            f"{field}.type must be one of {', '.join((*COMPARISONS, 'and', 'or'))}, got {kind!r}"
        )
    if not isinstance(value.get("key"), str) or not value["key"]:
        raise ValueError(f"{field}.key must be a non-empty string (a file attribute)")
    if "value" not in value:
        raise ValueError(f"{field}.value is required")
    item = value["value"]
    if kind in ("in", "nin"):
        if not isinstance(item, list) or not all(isinstance(v, str | int | float) for v in item):
            raise ValueError(f"{field}.value must be a list of strings or numbers for {kind!r}")
    elif not isinstance(item, str | int | float | bool):
        raise ValueError(f"{field}.value must be a string, number or boolean, got {type(item).__name__}")
    return value


def _shorthand_filter(value: dict[str, Any], field: str) -> dict[str, Any]:
    if not value:
        raise ValueError(
            f'{field} is empty; send a filter such as {{"type": "eq", "key": "topic", '
            f'"value": "ai"}}, or leave {field} out'
        )
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            raise ValueError(
                f"{field}.{key} must be a string, number or boolean (the shorthand {{key: value}} means "
                f"equality), got {type(item).__name__}; an OpenAI filter needs a type (eq, and, ...)"
            )
    return {"type": "and", "filters": [{"type": "eq", "key": k, "value": v} for k, v in value.items()]}


# -- objects ---------------------------------------------------------------------------------------


class VectorStoreFileCounts(BaseModel):
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    in_progress: int = 0
    total: int = 0


class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"] = Field(description="Only `last_active_at`.")
    days: int = Field(ge=1, le=365, description="1 to 365.")


class VectorStoreObject(BaseModel):
    id: str = Field(description="`vs_<32 hex>`; also the backing vector DB's identifier.")
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str | None = None
    description: str | None = None
    usage_bytes: int = 0
    file_counts: VectorStoreFileCounts
    status: Literal["expired", "in_progress", "completed"] = "completed"
    expires_after: ExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    embedding_model: str | None = Field(default=None, description="Lamina: the backing vector DB's model.")
    embedding_dimension: int | None = None
    provider_id: str | None = Field(default=None, description="Lamina: the Vector IO provider serving it.")


class VectorStoreListResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[VectorStoreObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VectorStoreDeleteResponse(BaseModel):
    id: str
    object: Literal["vector_store.deleted"] = "vector_store.deleted"
    deleted: bool = True


class VectorStoreFileLastError(BaseModel):
    code: Literal["server_error", "rate_limit_exceeded"] = "server_error"
    message: str


class VectorStoreFileObject(BaseModel):
    id: str = Field(description="The file's id (Files API).")
    object: Literal["vector_store.file"] = "vector_store.file"
    attributes: dict[str, Any] = Field(default_factory=dict)
    chunking_strategy: ChunkingStrategyAuto | ChunkingStrategyStatic = Field(discriminator="type")
    created_at: int
    last_error: VectorStoreFileLastError | None = None
    status: VectorStoreFileStatus
    usage_bytes: int = 0
    vector_store_id: str


class VectorStoreListFilesResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[VectorStoreFileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VectorStoreFileDeleteResponse(BaseModel):
    id: str
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"
    deleted: bool = True


class VectorStoreContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class VectorStoreFileContentsResponse(BaseModel):
    """Llama Stack's shape (``file_id``, ``filename``, ``attributes``, ``content``) and OpenAI's page
    (``object``, ``data``, ``has_more``, ``next_page``), both: ``data`` repeats ``content``."""

    file_id: str
    filename: str
    attributes: dict[str, Any]
    content: list[VectorStoreContent]
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[VectorStoreContent]
    has_more: bool = False
    next_page: str | None = None


class VectorStoreSearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any] | None = None
    content: list[VectorStoreContent]


class VectorStoreSearchResponsePage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: str
    data: list[VectorStoreSearchResult]
    has_more: bool = False
    next_page: str | None = None


# -- requests --------------------------------------------------------------------------------------


def _validated(check: Any) -> Any:
    def validate(cls: Any, value: Any) -> Any:
        return check(value)

    return validate


class CreateVectorStoreRequest(BaseModel):
    name: str | None = None
    description: str | None = None
    file_ids: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, max_length=500, description="Files to attach at once."
    )
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategyAuto | ChunkingStrategyStatic | None = Field(
        default=None, description="For `file_ids` (default `auto`: 800 tokens, 400 overlapping)."
    )
    metadata: dict[str, Any] | None = Field(default=None, description="At most 16 keys.")
    embedding_model: str | None = Field(
        default=None, min_length=1, description="Default: the first embedding model."
    )
    embedding_dimension: int | None = Field(default=None, ge=1, description="Default: the model's.")
    provider_id: str | None = Field(
        default=None, min_length=1, description="Needed when several Vector IO providers exist."
    )
    provider_vector_db_id: str | None = Field(default=None, min_length=1)

    _chunking = field_validator("chunking_strategy", mode="before")(_validated(parse_chunking_strategy))

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        return _check_metadata(value)


class ListVectorStoresRequest(BaseModel):
    limit: int = Field(default=20, ge=1, le=100, description="1 to 100, default 20.")
    order: Order = Field(default="desc", description="By created_at.")
    after: str | None = Field(default=None, description="A vector store id: list those after it.")
    before: str | None = Field(default=None, description="A vector store id: list those before it.")


class VectorStoreIdRequest(BaseModel):
    vector_store_id: str = Field(min_length=1)


class UpdateVectorStoreRequest(BaseModel):
    vector_store_id: str = Field(min_length=1)
    name: str | None = None
    expires_after: ExpiresAfter | None = Field(default=None, description="null removes the expiry.")
    metadata: dict[str, Any] | None = Field(default=None, description="Replaces the metadata.")

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        return _check_metadata(value)


class RankingOptions(BaseModel):
    ranker: Literal["auto", "default-2024-11-15", "none"] | None = None
    score_threshold: float | None = Field(default=0.0, description="Drop results scoring lower (default 0).")


class SearchVectorStoreRequest(BaseModel):
    vector_store_id: str = Field(min_length=1)
    query: str | list[str] = Field(description="A list is joined with spaces.")
    filters: dict[str, Any] | None = Field(default=None, description="OpenAI comparison/compound filters.")
    max_num_results: int = Field(default=10, ge=1, le=50, description="1 to 50, default 10.")
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = Field(default=False, description="true: the query is only normalised.")
    search_mode: Literal["vector", "keyword", "hybrid"] = Field(default="vector", description="Lamina.")
    page: str | None = Field(
        default=None,
        min_length=1,
        description="The `next_page` of an earlier answer to the same search: the results after it.",
    )

    _filters = field_validator("filters", mode="before")(
        _validated(lambda v: None if v is None or v == {} else check_filter(v))  # {}: no filter
    )


class AttachFileRequest(BaseModel):
    vector_store_id: str = Field(min_length=1)
    file_id: str = Field(min_length=1)
    attributes: dict[str, Any] | None = Field(default=None, description="Strings, numbers, booleans; <= 16.")
    chunking_strategy: ChunkingStrategyAuto | ChunkingStrategyStatic | None = None

    _chunking = field_validator("chunking_strategy", mode="before")(_validated(parse_chunking_strategy))
    _attributes = field_validator("attributes", mode="before")(_validated(check_attributes))


class ListVectorStoreFilesRequest(BaseModel):
    vector_store_id: str = Field(min_length=1)
    limit: int = Field(default=20, ge=1, le=100)
    order: Order = "desc"
    after: str | None = None
    before: str | None = None
    filter: VectorStoreFileStatus | None = Field(default=None, description="Only files in this status.")


class VectorStoreFileRequest(BaseModel):
    vector_store_id: str = Field(min_length=1)
    file_id: str = Field(min_length=1)


class UpdateVectorStoreFileRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    vector_store_id: str = Field(min_length=1)
    file_id: str = Field(min_length=1)
    attributes: dict[str, Any] = Field(description="Replaces the file's attributes.")

    _attributes = field_validator("attributes", mode="before")(_validated(check_attributes))


def _check_metadata(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"metadata has {len(value)} keys; at most {MAX_ATTRIBUTES} are allowed")
        for key in value:
            if len(key) > MAX_KEY_CHARS:
                raise ValueError(f"metadata: key {key[:20]!r}... is longer than {MAX_KEY_CHARS} characters")
    return value


# -- the API ---------------------------------------------------------------------------------------

_VS = "/v1/openai/v1/vector_stores"
_ALIAS = "/v1/vector_stores"


class VectorStores(Protocol):
    """OpenAI vector stores: create, list, retrieve, update, delete, search; attach and manage files."""

    @webmethod(
        "POST",
        _VS,
        aliases=(_ALIAS,),
        request=CreateVectorStoreRequest,
        response=VectorStoreObject,
        access=creates("vector_db", uses=(("file", "file_ids"), ("model", "embedding_model"))),
    )
    async def openai_create_vector_store(self, request: CreateVectorStoreRequest) -> VectorStoreObject:
        """Create a vector store (a new vector DB); `file_ids` are attached and ingested in the background."""
        ...

    @webmethod(
        "GET",
        _VS,
        aliases=(_ALIAS,),
        request=ListVectorStoresRequest,
        response=VectorStoreListResponse,
        access=lists("vector_db"),
    )
    async def openai_list_vector_stores(self, request: ListVectorStoresRequest) -> VectorStoreListResponse:
        """List vector stores, newest first by default; page with `after` / `before`."""
        ...

    @webmethod(
        "GET",
        _VS + "/{vector_store_id}",
        aliases=(_ALIAS + "/{vector_store_id}",),
        request=VectorStoreIdRequest,
        response=VectorStoreObject,
        access=reads("vector_db", "vector_store_id"),
    )
    async def openai_retrieve_vector_store(self, request: VectorStoreIdRequest) -> VectorStoreObject:
        """Get a vector store (its file counts and status are current)."""
        ...

    @webmethod(
        "POST",
        _VS + "/{vector_store_id}",
        aliases=(_ALIAS + "/{vector_store_id}",),
        request=UpdateVectorStoreRequest,
        response=VectorStoreObject,
        access=updates("vector_db", "vector_store_id"),
    )
    async def openai_update_vector_store(self, request: UpdateVectorStoreRequest) -> VectorStoreObject:
        """Update a vector store's name, expires_after or metadata (fields sent are changed)."""
        ...

    @webmethod(
        "DELETE",
        _VS + "/{vector_store_id}",
        aliases=(_ALIAS + "/{vector_store_id}",),
        request=VectorStoreIdRequest,
        response=VectorStoreDeleteResponse,
        access=deletes("vector_db", "vector_store_id"),
    )
    async def openai_delete_vector_store(self, request: VectorStoreIdRequest) -> VectorStoreDeleteResponse:
        """Delete a vector store, its files' records and its vector DB (with every chunk)."""
        ...

    @webmethod(
        "POST",
        _VS + "/{vector_store_id}/search",
        cancel_on_disconnect=True,
        aliases=(_ALIAS + "/{vector_store_id}/search",),
        request=SearchVectorStoreRequest,
        response=VectorStoreSearchResponsePage,
        access=reads("vector_db", "vector_store_id"),
    )
    async def openai_search_vector_store(
        self, request: SearchVectorStoreRequest
    ) -> VectorStoreSearchResponsePage:
        """Search a vector store's completed files, optionally filtered by file attributes."""
        ...

    @webmethod(
        "POST",
        _VS + "/{vector_store_id}/files",
        aliases=(_ALIAS + "/{vector_store_id}/files",),
        request=AttachFileRequest,
        response=VectorStoreFileObject,
        access=updates("vector_db", "vector_store_id", uses=(("file", "file_id"),)),
    )
    async def openai_attach_file_to_vector_store(self, request: AttachFileRequest) -> VectorStoreFileObject:
        """Attach a file: answers `in_progress` at once; poll until `completed` or `failed`."""
        ...

    @webmethod(
        "GET",
        _VS + "/{vector_store_id}/files",
        aliases=(_ALIAS + "/{vector_store_id}/files",),
        request=ListVectorStoreFilesRequest,
        response=VectorStoreListFilesResponse,
        access=reads("vector_db", "vector_store_id"),
    )
    async def openai_list_files_in_vector_store(
        self, request: ListVectorStoreFilesRequest
    ) -> VectorStoreListFilesResponse:
        """List a vector store's files (newest first by default), optionally only those in one status."""
        ...

    @webmethod(
        "GET",
        _VS + "/{vector_store_id}/files/{file_id}",
        aliases=(_ALIAS + "/{vector_store_id}/files/{file_id}",),
        request=VectorStoreFileRequest,
        response=VectorStoreFileObject,
        access=reads("vector_db", "vector_store_id"),
    )
    async def openai_retrieve_vector_store_file(
        self, request: VectorStoreFileRequest
    ) -> VectorStoreFileObject:
        """Get a vector store file (its status and last_error)."""
        ...

    @webmethod(
        "GET",
        _VS + "/{vector_store_id}/files/{file_id}/content",
        aliases=(_ALIAS + "/{vector_store_id}/files/{file_id}/content",),
        request=VectorStoreFileRequest,
        response=VectorStoreFileContentsResponse,
        access=reads("vector_db", "vector_store_id"),
    )
    async def openai_retrieve_vector_store_file_contents(
        self, request: VectorStoreFileRequest
    ) -> VectorStoreFileContentsResponse:
        """The text of a vector store file's chunks, in order (empty until it is completed)."""
        ...

    @webmethod(
        "POST",
        _VS + "/{vector_store_id}/files/{file_id}",
        aliases=(_ALIAS + "/{vector_store_id}/files/{file_id}",),
        request=UpdateVectorStoreFileRequest,
        response=VectorStoreFileObject,
        access=updates("vector_db", "vector_store_id"),
    )
    async def openai_update_vector_store_file(
        self, request: UpdateVectorStoreFileRequest
    ) -> VectorStoreFileObject:
        """Replace a vector store file's attributes (search filters use them at once)."""
        ...

    @webmethod(
        "DELETE",
        _VS + "/{vector_store_id}/files/{file_id}",
        aliases=(_ALIAS + "/{vector_store_id}/files/{file_id}",),
        request=VectorStoreFileRequest,
        response=VectorStoreFileDeleteResponse,
        access=updates("vector_db", "vector_store_id"),
    )
    async def openai_delete_vector_store_file(
        self, request: VectorStoreFileRequest
    ) -> VectorStoreFileDeleteResponse:
        """Detach a file from a vector store and delete its chunks (the file stays in the Files API)."""
        ...
