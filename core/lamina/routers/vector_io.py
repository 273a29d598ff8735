"""The Vector IO router: checks chunks, embeds them, and turns queries into plain provider queries.

Insert (``POST /v1/vector-io/insert``):

- The vector DB must be registered (404 listing the registered ones).
- Every chunk needs non-empty text content of at most ``MAX_CHUNK_CHARS`` characters, and an
  embedding it brings must have the vector DB's dimension and finite values (400 naming
  ``chunks[i].content`` / ``chunks[i].embedding``).
- Each chunk gets its ``chunk_id``: its own, else ``metadata.chunk_id``, else a new uuid4 hex. A
  chunk whose id is stored already replaces it; of two chunks with one id in one request the last
  wins.
- Missing embeddings are computed with the vector DB's embedding model through the Inference
  router, ``EMBED_BATCH`` texts per call, ``EMBED_CONCURRENCY`` calls at a time, asking the
  provider to cut over-long texts at their end (``text_truncation: end``); a provider that does not
  truncate (it answers 400 about ``text_truncation``) is asked again without truncation.
- ``ttl_seconds`` is accepted and ignored, as Llama Stack 0.2.12 does.

Query (``POST /v1/vector-io/query``): ``params`` is validated as ``QueryParams`` (400 naming
``params.<field>``); the query's text must not be empty (400 naming ``query``).

- ``vector`` embeds the query and asks the provider for the ``max_chunks`` nearest chunks.
- ``keyword`` asks the provider for the ``max_chunks`` best text matches.
- ``hybrid`` asks for both at once, each for ``hybrid_pool(max_chunks)`` candidates, and fuses
  them with the ranker: ``rrf`` (default, ``impact_factor`` 60) scores a chunk
  ``sum 1 / (impact_factor + rank)`` over the lists it is in (ranks from 1); ``weighted`` scores it
  ``alpha * v + (1 - alpha) * k`` where ``v`` and ``k`` are its min-max-normalised vector and keyword
  scores (0 in a list it is missing from; a list whose scores are all equal normalises to 1).
- ``score_threshold`` then drops chunks scoring below it (the mode's own score; the fused one in
  hybrid), and at most ``max_chunks`` are returned, best first (ties by chunk_id), one per chunk_id.
- Embeddings are left out of returned chunks unless ``params.include_embeddings`` is true.
- A provider answering a NaN or infinite score, more chunks than asked, or a malformed response
  gets a 502 naming it: nothing is silently repaired.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

from pydantic import ValidationError

from lamina.apis.common import content_to_text
from lamina.apis.inference import EmbeddingsRequest
from lamina.apis.vector_io import (
    MAX_CHUNK_CHARS,
    Chunk,
    ChunkQuery,
    InsertChunksRequest,
    QueryChunksRequest,
    QueryChunksResponse,
    QueryParams,
    RRFRanker,
    VectorDB,
    WeightedRanker,
)
from lamina.errors import BadRequestError, LaminaError, UpstreamError, validation_error
from lamina.resources.vector_dbs import VectorDBsRoutingTable

EMBED_BATCH = 64  # texts per embeddings call
EMBED_CONCURRENCY = 4  # embeddings calls in flight per insert
HYBRID_POOL_MIN = 20  # candidates each mode contributes to a hybrid query, at least...
HYBRID_POOL_MAX = 100  # ...and at most (unless max_chunks itself is larger)


def hybrid_pool(max_chunks: int) -> int:
    """Candidates asked of each mode for a hybrid query returning ``max_chunks``."""
    return max(max_chunks, min(max(4 * max_chunks, HYBRID_POOL_MIN), HYBRID_POOL_MAX))


class VectorIORouter:
    def __init__(
        self,
        vector_dbs: VectorDBsRoutingTable,
        inference: Any = None,
        *,
        embed_batch: int = EMBED_BATCH,
        embed_concurrency: int = EMBED_CONCURRENCY,
    ) -> None:
        self.vector_dbs = vector_dbs
        self.inference = inference  # the InferenceRouter (anything with ``embeddings``)
        self.embed_batch = embed_batch
        self.embed_concurrency = embed_concurrency
        self._no_truncation: set[str] = set()  # embedding models whose provider refuses 'end'

    # -- insert --------------------------------------------------------------------------------

    async def insert_chunks(self, request: InsertChunksRequest) -> None:
        vector_db, provider = await self.vector_dbs.resolve(request.vector_db_id)
        chunks: dict[str, tuple[Chunk, str]] = {}  # chunk_id -> (chunk, its text)
        for i, chunk in enumerate(request.chunks):
            text = _chunk_text(chunk, i)
            if chunk.embedding is not None:
                _check_vector(chunk.embedding, vector_db.embedding_dimension, f"chunks[{i}].embedding")
            chunk_id = str(chunk.chunk_id or chunk.metadata.get("chunk_id") or uuid.uuid4().hex)
            chunks.pop(chunk_id, None)  # the last of one id wins, in its own position
            chunks[chunk_id] = (chunk.model_copy(update={"chunk_id": chunk_id}), text)
        missing = [cid for cid, (chunk, _) in chunks.items() if chunk.embedding is None]
        if missing:
            vectors = await self.embed(vector_db, [chunks[cid][1] for cid in missing])
            for cid, vector in zip(missing, vectors, strict=True):
                chunks[cid] = (chunks[cid][0].model_copy(update={"embedding": vector}), chunks[cid][1])
        await provider.insert_chunks(vector_db, [chunk for chunk, _ in chunks.values()])

    async def embed(self, vector_db: VectorDB, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` with the vector DB's model, checked (502 when unusable)."""
        if self.inference is None:
            raise LaminaError("the Vector IO router has no Inference API to compute embeddings with")
        model = vector_db.embedding_model
        batches = [texts[i : i + self.embed_batch] for i in range(0, len(texts), self.embed_batch)]
        gate = asyncio.Semaphore(self.embed_concurrency)

        async def one(batch: list[str]) -> list[list[float]]:
            async with gate:
                return await self._embed_batch(model, batch)

        results = await asyncio.gather(*(one(b) for b in batches))
        vectors = [v for batch in results for v in batch]
        if len(vectors) != len(texts):
            raise UpstreamError(
                await self._model_provider(model),
                f"embedding model '{model}' returned {len(vectors)} embeddings for {len(texts)}",
            )
        for vector in vectors:
            if len(vector) != vector_db.embedding_dimension or not all(map(math.isfinite, vector)):
                raise UpstreamError(
                    await self._model_provider(model),
                    f"embedding model '{model}' returned an embedding of {len(vector)} values (vector DB "
                    f"'{vector_db.identifier}' needs {vector_db.embedding_dimension}, all finite)",
                )
        return vectors

    async def _embed_batch(self, model: str, texts: list[str]) -> list[list[float]]:
        truncation = "none" if model in self._no_truncation else "end"
        request = EmbeddingsRequest(model_id=model, contents=texts, text_truncation=truncation)
        try:
            response = await self.inference.embeddings(request)
        except BadRequestError as exc:
            if truncation == "none" or exc.param != "text_truncation":
                raise
            self._no_truncation.add(model)
            request = request.model_copy(update={"text_truncation": "none"})
            response = await self.inference.embeddings(request)
        return [list(v) for v in response.embeddings]

    async def _model_provider(self, model_id: str) -> str:
        try:
            return (await self.vector_dbs.models.get(model_id)).provider_id
        except LaminaError:
            return "unknown"

    # -- query ---------------------------------------------------------------------------------

    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        vector_db, provider = await self.vector_dbs.resolve(request.vector_db_id)
        params = parse_params(request.params)
        text = content_to_text(request.query)
        if not text.strip():
            raise BadRequestError("query has no text to search for", param="query")
        if len(text) > MAX_CHUNK_CHARS:
            raise BadRequestError(
                f"query has {len(text)} characters; at most {MAX_CHUNK_CHARS} are accepted", param="query"
            )
        n = params.max_chunks
        if params.mode == "keyword":
            ranked = await self._ask(provider, vector_db, ChunkQuery(mode="keyword", k=n, text=text))
        elif params.mode == "vector":
            embedding = (await self.embed(vector_db, [text]))[0]
            query = ChunkQuery(mode="vector", k=n, embedding=embedding, text=text)
            ranked = await self._ask(provider, vector_db, query)
        else:
            pool = hybrid_pool(n)
            embedding = (await self.embed(vector_db, [text]))[0]
            vector, keyword = await asyncio.gather(
                self._ask(
                    provider, vector_db, ChunkQuery(mode="vector", k=pool, embedding=embedding, text=text)
                ),
                self._ask(provider, vector_db, ChunkQuery(mode="keyword", k=pool, text=text)),
            )
            ranked = fuse(vector, keyword, params.ranker or RRFRanker())
        if params.score_threshold is not None:
            ranked = [(c, s) for c, s in ranked if s >= params.score_threshold]
        ranked = ranked[:n]
        if not params.include_embeddings:
            ranked = [(c.model_copy(update={"embedding": None}), s) for c, s in ranked]
        return QueryChunksResponse(chunks=[c for c, _ in ranked], scores=[s for _, s in ranked])

    async def _ask(self, provider: Any, vector_db: VectorDB, query: ChunkQuery) -> list[tuple[Chunk, float]]:
        """One provider query, checked, deduplicated by chunk_id (best score kept), best first."""
        response = await provider.query_chunks(vector_db, query)
        who = vector_db.provider_id
        if not isinstance(response, QueryChunksResponse):
            try:
                response = QueryChunksResponse.model_validate(response)
            except ValidationError as exc:
                raise UpstreamError(who, f"query_chunks returned a malformed response: {exc}") from None
        if len(response.chunks) != len(response.scores):
            raise UpstreamError(
                who,
                f"{query.mode} query returned {len(response.chunks)} chunks but "
                f"{len(response.scores)} scores",
            )
        if len(response.chunks) > query.k:
            raise UpstreamError(
                who, f"{query.mode} query returned {len(response.chunks)} chunks for k={query.k}"
            )
        best: dict[str, tuple[Chunk, float]] = {}
        for i, (chunk, score) in enumerate(zip(response.chunks, response.scores, strict=True)):
            if not isinstance(score, int | float) or not math.isfinite(score):
                raise UpstreamError(
                    who, f"{query.mode} query returned a non-finite score ({score!r}) for chunk {i}"
                )
            key = chunk.chunk_id or f"#unidentified-{i}"
            if key not in best or score > best[key][1]:
                best[key] = (chunk, float(score))
        return _sorted(best.values())


# -- parameters and fusion ---------------------------------------------------------------------


# The ranker's type tags, which pydantic puts in an error's location (params.ranker.rrf.impact_factor).
_RANKER_TAGS = frozenset({"rrf", "weighted"})


def parse_params(params: dict[str, Any] | None) -> QueryParams:
    """``params`` as QueryParams; a 400 naming ``params.<field>`` when it does not validate."""
    try:
        return QueryParams.model_validate(params or {})
    except ValidationError as exc:
        raise validation_error(exc, "query params", ("params",), limit=5, drop=_RANKER_TAGS) from None


def fuse(
    vector: list[tuple[Chunk, float]],
    keyword: list[tuple[Chunk, float]],
    ranker: RRFRanker | WeightedRanker,
) -> list[tuple[Chunk, float]]:
    """Fuse two ranked lists (best first, one entry per chunk_id) into one, best first."""
    chunks: dict[str, Chunk] = {}
    for chunk, _ in [*keyword, *vector]:  # the vector hit's copy wins (it may carry the embedding)
        chunks[_key(chunk)] = chunk
    if isinstance(ranker, WeightedRanker):
        v = _minmax({_key(c): s for c, s in vector})
        k = _minmax({_key(c): s for c, s in keyword})
        fused = {cid: ranker.alpha * v.get(cid, 0.0) + (1 - ranker.alpha) * k.get(cid, 0.0) for cid in chunks}
    else:
        fused = dict.fromkeys(chunks, 0.0)
        for ranked in (vector, keyword):
            for rank, (chunk, _) in enumerate(ranked, start=1):
                fused[_key(chunk)] += 1.0 / (ranker.impact_factor + rank)
    return _sorted((chunks[cid], score) for cid, score in fused.items())


def _minmax(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low <= 0:
        return dict.fromkeys(scores, 1.0)
    return {cid: (s - low) / (high - low) for cid, s in scores.items()}


def _sorted(items: Any) -> list[tuple[Chunk, float]]:
    return sorted(items, key=lambda cs: (-cs[1], _key(cs[0])))


def _key(chunk: Chunk) -> str:
    return chunk.chunk_id or ""


# -- chunk checks ------------------------------------------------------------------------------


def _chunk_text(chunk: Chunk, i: int) -> str:
    text = content_to_text(chunk.content)
    if not text.strip():
        raise BadRequestError(
            f"chunks[{i}].content has no text; every chunk needs text to embed and search",
            param=f"chunks[{i}].content",
        )
    if len(text) > MAX_CHUNK_CHARS:
        raise BadRequestError(
            f"chunks[{i}].content: oversized chunk of {len(text)} characters; at most {MAX_CHUNK_CHARS} "
            f"are accepted. Split it into smaller chunks.",
            param=f"chunks[{i}].content",
        )
    return text


def _check_vector(vector: list[float], dimension: int, field: str) -> None:
    if len(vector) != dimension:
        raise BadRequestError(
            f"{field} has {len(vector)} values, but the vector DB's embeddings have {dimension} dimensions",
            param=field,
        )
    if not all(math.isfinite(x) for x in vector):
        raise BadRequestError(f"{field} has a NaN or infinite value", param=field)
