"""Vector DBs and Vector IO: the VectorDB resource, chunk insert/query, and what providers implement.

The router (``lamina.routers.vector_io``) does everything providers would otherwise each redo:
it checks requests, computes missing embeddings with the vector DB's embedding model through the
Inference API, fuses keyword and vector results for ``mode: hybrid``, and applies
``score_threshold``. A provider stores chunks and answers one plain query at a time
(``VectorIOProvider``): vector or keyword, top ``k``, scores finite and higher-is-better.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lamina.access.declarations import creates, deletes, lists, reads, updates
from lamina.apis.common import Empty, InterleavedContent, Resource
from lamina.apis.webmethod import webmethod

# -- the VectorDB resource --------------------------------------------------------------------------


class VectorDB(Resource):
    type: Literal["vector_db"] = "vector_db"
    embedding_model: str
    embedding_dimension: int
    vector_db_name: str | None = None

    @property
    def vector_db_id(self) -> str:
        return self.identifier

    @property
    def provider_vector_db_id(self) -> str:
        return self.provider_resource_id or self.identifier


class ListVectorDBsResponse(BaseModel):
    data: list[VectorDB]


class GetVectorDBRequest(BaseModel):
    vector_db_id: str = Field(min_length=1)


class RegisterVectorDBRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector_db_id: str = Field(min_length=1, description="The identifier clients will use.")
    embedding_model: str = Field(min_length=1, description="A registered embedding model.")
    embedding_dimension: int | None = Field(
        default=None,
        ge=1,
        description="Must match the embedding model's metadata.embedding_dimension; omitted: the model's "
        "(Llama Stack's signature default is 384, but it stores the model's dimension).",
    )
    provider_id: str | None = Field(
        default=None, description="Required when several providers are configured."
    )
    provider_vector_db_id: str | None = Field(
        default=None, description="The collection's name at the provider."
    )
    vector_db_name: str | None = None


# -- chunks ----------------------------------------------------------------------------------------

MAX_CHUNK_CHARS = 100_000  # an "oversized chunk" is refused with a 400 naming it
MAX_CHUNKS_PER_INSERT = 10_000
MAX_QUERY_CHUNKS = 1_000


class Chunk(BaseModel):
    """A piece of content with its metadata and (once inserted) its embedding.

    ``chunk_id`` identifies the chunk inside its vector DB: inserting a chunk with an id already
    stored replaces it. The router sets it when the client does not (from ``metadata.chunk_id``,
    else a new uuid).
    """

    model_config = ConfigDict(extra="allow")

    content: InterleavedContent
    metadata: dict[str, Any] = Field(default_factory=dict)
    embedding: list[float] | None = None
    chunk_id: str | None = None


class InsertChunksRequest(BaseModel):
    vector_db_id: str = Field(min_length=1)
    chunks: list[Chunk] = Field(min_length=1, max_length=MAX_CHUNKS_PER_INSERT)
    ttl_seconds: int | None = Field(
        default=None, ge=1, description="Accepted and ignored, as Llama Stack 0.2.12 does."
    )


class RRFRanker(BaseModel):
    """Reciprocal-rank fusion: score = sum over modes of 1 / (impact_factor + rank)."""

    type: Literal["rrf"] = "rrf"
    impact_factor: float = Field(default=60.0, gt=0)


class WeightedRanker(BaseModel):
    """Weighted fusion of min-max-normalised scores: alpha * vector + (1 - alpha) * keyword."""

    type: Literal["weighted"] = "weighted"
    alpha: float = Field(default=0.5, ge=0.0, le=1.0)


class QueryParams(BaseModel):
    """``params`` of a query (a free dict in Llama Stack; these keys are understood)."""

    model_config = ConfigDict(extra="allow")

    max_chunks: int = Field(default=3, ge=1, le=MAX_QUERY_CHUNKS)
    score_threshold: float | None = None
    mode: Literal["vector", "keyword", "hybrid"] = "vector"
    ranker: RRFRanker | WeightedRanker | None = Field(default=None, discriminator="type")
    include_embeddings: bool = Field(
        default=False, description="Return each chunk's embedding (left out by default)."
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class QueryChunksRequest(BaseModel):
    vector_db_id: str = Field(min_length=1)
    query: InterleavedContent
    params: dict[str, Any] | None = None


class QueryChunksResponse(BaseModel):
    chunks: list[Chunk]
    scores: list[float]


# -- the API ---------------------------------------------------------------------------------------


class VectorDBs(Protocol):
    @webmethod(
        "GET",
        "/v1/vector-dbs",
        request=Empty,
        response=ListVectorDBsResponse,
        access=lists("vector_db", "identifier"),
    )
    async def list_vector_dbs(self, request: Empty) -> ListVectorDBsResponse:
        """List registered vector databases."""
        ...

    @webmethod(
        "GET",
        "/v1/vector-dbs/{vector_db_id:.+}",
        request=GetVectorDBRequest,
        response=VectorDB,
        access=reads("vector_db", "vector_db_id"),
    )
    async def get_vector_db(self, request: GetVectorDBRequest) -> VectorDB:
        """Get a vector database by its identifier."""
        ...

    @webmethod(
        "POST",
        "/v1/vector-dbs",
        request=RegisterVectorDBRequest,
        response=VectorDB,
        access=creates(
            "vector_db", "identifier", uses=(("model", "embedding_model"),), requested="vector_db_id"
        ),
    )
    async def register_vector_db(self, request: RegisterVectorDBRequest) -> VectorDB:
        """Register a vector database (its embedding model must be a registered embedding model)."""
        ...

    @webmethod(
        "DELETE",
        "/v1/vector-dbs/{vector_db_id:.+}",
        request=GetVectorDBRequest,
        response=None,
        access=deletes("vector_db", "vector_db_id"),
    )
    async def unregister_vector_db(self, request: GetVectorDBRequest) -> None:
        """Unregister a vector database and drop its chunks."""
        ...


class VectorIO(Protocol):
    @webmethod(
        "POST",
        "/v1/vector-io/insert",
        request=InsertChunksRequest,
        response=None,
        access=updates("vector_db", "vector_db_id"),
    )
    async def insert_chunks(self, request: InsertChunksRequest) -> None:
        """Insert chunks; missing embeddings are computed with the vector DB's embedding model."""
        ...

    @webmethod(
        "POST",
        "/v1/vector-io/query",
        request=QueryChunksRequest,
        response=QueryChunksResponse,
        cancel_on_disconnect=True,
        access=reads("vector_db", "vector_db_id"),
    )
    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        """Query chunks by vector, keyword or hybrid search; scores are finite, higher is better."""
        ...


# -- what a provider implements ----------------------------------------------------------------------


class ChunkQuery(BaseModel):
    """One plain query a provider answers (the router turns hybrid into one of each and fuses)."""

    mode: Literal["vector", "keyword"]
    k: int = Field(ge=1)
    embedding: list[float] | None = Field(default=None, description="Set in vector mode.")
    text: str = Field(default="", description="The query's text (keyword mode searches it).")


class VectorIOProvider(Protocol):
    """A Vector IO provider: persistent chunk storage with vector and keyword search.

    Contract (``lamina.testing.conformance.VectorIOConformance`` checks it):

    * ``register_vector_db`` prepares storage for a vector DB (idempotent: called again for a
      registered one after a restart); ``unregister_vector_db`` drops it and its chunks.
    * ``insert_chunks`` gets chunks that all have ``chunk_id`` and an ``embedding`` of the vector
      DB's dimension; a chunk whose id is stored already replaces it. Everything inserted
      survives a restart of the server.
    * ``query_chunks`` returns at most ``query.k`` chunks, best first, each with its score:
      vector mode scores by cosine similarity (in [-1, 1]); keyword mode by a text relevance
      score (BM25, ts_rank, ...) that is finite and >= 0, and only chunks that match at least
      one query term. Scores are never NaN or infinite, and higher is always better.
      Returned chunks carry their content, metadata and chunk_id; the embedding may be omitted.
    * ``delete_chunks`` removes chunks by id (ids not stored are ignored).
    * CPU-heavy or blocking work runs off the event loop.
    """

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        """Prepare storage for ``vector_db`` (idempotent: called again after every restart)."""
        ...

    async def unregister_vector_db(self, vector_db: VectorDB) -> None:
        """Drop ``vector_db`` and every chunk in it."""
        ...

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        """Store ``chunks`` (each has ``chunk_id`` and an ``embedding``); a stored id is replaced."""
        ...

    async def query_chunks(self, vector_db: VectorDB, query: ChunkQuery) -> QueryChunksResponse:
        """At most ``query.k`` chunks, best first, with their scores (``vector`` or ``keyword`` mode)."""
        ...

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        """Remove chunks by id; ids not stored are ignored."""
        ...
