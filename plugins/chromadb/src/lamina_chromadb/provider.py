"""The ``remote::chromadb`` Vector IO provider (``lamina.apis.vector_io.VectorIOProvider``).

One Chroma collection per vector DB, created with cosine HNSW (``configuration.hnsw.space`` and
the classic ``hnsw:space`` metadata). Vector mode asks Chroma's ``query`` and scores
``1 - cosine distance`` (= cosine similarity). Keyword mode fetches the documents containing a
query term with Chroma's full-text ``where_document`` filter and ranks them with BM25 in the
provider (``lamina_chromadb.bm25``). How records look: ``lamina_chromadb.codec``.
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import structlog

from lamina.apis.vector_io import Chunk, ChunkQuery, QueryChunksResponse, VectorDB
from lamina.errors import BadRequestError, LaminaError, UpstreamError
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers.http_upstream import Timeouts
from lamina_chromadb import bm25, codec
from lamina_chromadb.client import ChromaClient
from lamina_chromadb.config import ChromaVectorIOConfig

log = structlog.get_logger(__name__)

FORMAT_KEY = "lamina:format"
FORMAT = 1
_ID_BATCH = 1000  # ids per get/delete request


async def create_provider(
    config: ChromaVectorIOConfig, deps: dict, context: ProviderContext
) -> ChromaVectorIOProvider:
    return ChromaVectorIOProvider(config, context)


@dataclass
class _Collection:
    id: str
    name: str
    space: str  # "cosine" for Lamina's collections; others exist when reusing foreign ones
    lamina: bool  # written by Lamina (documents are search text, chunks in metadata)


class ChromaVectorIOProvider(ProviderBase):
    def __init__(self, config: ChromaVectorIOConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        token = config.auth_token.get_secret_value() if config.auth_token else None
        self.client = ChromaClient(
            context.provider_id,
            config.url,
            tenant=config.tenant,
            database=config.database,
            token=token,
            timeouts=Timeouts(connect=config.connect_timeout, read=config.timeout),
            max_connections=config.max_connections,
        )
        self._collections: dict[str, _Collection] = {}
        self._max_batch: int | None = None
        self._base64 = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        await self.client.start()
        try:
            await self.client.call("GET", "heartbeat")
        except LaminaError as exc:  # not fatal: Chroma may come up after Lamina
            log.warning("chroma_unreachable", provider_id=self.provider_id, error=exc.message)

    async def shutdown(self) -> None:
        await self.client.close()

    async def health(self) -> dict[str, Any]:
        try:
            await self.client.call("GET", "heartbeat")
        except LaminaError as exc:
            return {"status": "Error", "message": exc.message}
        return {"status": "OK"}

    # -- vector DBs ----------------------------------------------------------------------------

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        coll = await self._open(vector_db)
        log.debug("chroma_collection", vector_db=vector_db.identifier, collection=coll.name, id=coll.id)

    async def unregister_vector_db(self, vector_db: VectorDB) -> None:
        name = codec.collection_name(vector_db.provider_vector_db_id)
        self._collections.pop(name, None)
        try:
            await self.client.call("DELETE", self.client.collections(f"/{name}"))
        except UpstreamError as exc:
            if exc.upstream_status != 404:
                raise

    async def _open(self, vector_db: VectorDB) -> _Collection:
        name = codec.collection_name(vector_db.provider_vector_db_id)
        body = {
            "name": name,
            "get_or_create": True,
            "configuration": {"hnsw": {"space": "cosine"}},
            "metadata": {
                "hnsw:space": "cosine",
                FORMAT_KEY: FORMAT,
                "lamina:vector_db_id": vector_db.identifier,
                "lamina:embedding_dimension": vector_db.embedding_dimension,
            },
        }
        doc = await self.client.call("POST", self.client.collections(), body)
        meta = doc.get("metadata") or {}
        hnsw = (doc.get("configuration_json") or {}).get("hnsw") or {}
        space = hnsw.get("space") or meta.get("hnsw:space") or "l2"
        dim = doc.get("dimension")
        if dim and dim != vector_db.embedding_dimension:
            raise BadRequestError(
                f"provider '{self.provider_id}': Chroma collection '{name}' holds {dim}-dimensional "
                f"embeddings but vector DB '{vector_db.identifier}' is {vector_db.embedding_dimension}-"
                "dimensional; use another provider_vector_db_id or delete the collection",
                provider_id=self.provider_id,
            )
        if space != "cosine":
            log.warning(
                "chroma_collection_not_cosine",
                collection=name,
                space=space,
                note="scores are exact cosine similarities, but candidates come from its own metric",
            )
        coll = _Collection(id=doc["id"], name=name, space=space, lamina=meta.get(FORMAT_KEY) == FORMAT)
        self._collections[name] = coll
        return coll

    async def _collection(self, vector_db: VectorDB, *, fresh: bool = False) -> _Collection:
        name = codec.collection_name(vector_db.provider_vector_db_id)
        coll = None if fresh else self._collections.get(name)
        return coll or await self._open(vector_db)

    async def _on_collection(self, vector_db: VectorDB, op: Any) -> Any:
        """Run ``op(collection)``; if Chroma no longer knows the collection id, reopen it once."""
        coll = await self._collection(vector_db)
        try:
            return await op(coll)
        except UpstreamError as exc:
            if exc.upstream_status != 404:
                raise
        return await op(await self._collection(vector_db, fresh=True))

    # -- chunks --------------------------------------------------------------------------------

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        unique = list({c.chunk_id: c for c in chunks}.values())  # a later duplicate replaces
        await self._preflight()
        size = max(1, min(self.config.insert_batch_size, self._max_batch or 1000))
        batches = [unique[i : i + size] for i in range(0, len(unique), size)]
        limit = asyncio.Semaphore(self.config.insert_concurrency)

        async def send(batch: list[Chunk]) -> None:
            async with limit:
                data = await asyncio.to_thread(_upsert_payload, batch, self._base64)

                async def upsert(coll: _Collection) -> None:
                    await self.client.call("POST", self.client.collections(f"/{coll.id}/upsert"), data=data)

                await self._on_collection(vector_db, upsert)

        await asyncio.gather(*(send(b) for b in batches))

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        ids = list(dict.fromkeys(chunk_ids))
        for i in range(0, len(ids), _ID_BATCH):
            batch = ids[i : i + _ID_BATCH]

            async def delete(coll: _Collection, batch: list[str] = batch) -> None:
                await self.client.call("POST", self.client.collections(f"/{coll.id}/delete"), {"ids": batch})

            await self._on_collection(vector_db, delete)

    async def query_chunks(self, vector_db: VectorDB, query: ChunkQuery) -> QueryChunksResponse:
        if query.mode == "keyword":
            return await self._on_collection(vector_db, lambda c: self._keyword(c, query))
        if query.embedding is None:
            raise BadRequestError("vector mode needs the query's embedding", provider_id=self.provider_id)
        return await self._on_collection(vector_db, lambda c: self._vector(c, query))

    async def _vector(self, coll: _Collection, query: ChunkQuery) -> QueryChunksResponse:
        include = ["metadatas", "distances"]
        if not coll.lamina:
            include.append("documents")
        if coll.space != "cosine":
            include.append("embeddings")
        body = {"query_embeddings": [query.embedding], "n_results": query.k, "include": include}
        doc = await self.client.call("POST", self.client.collections(f"/{coll.id}/query"), body)
        ids = _first(doc.get("ids"))
        metas = _first(doc.get("metadatas")) or [None] * len(ids)
        docs = _first(doc.get("documents")) or [None] * len(ids)
        if coll.space == "cosine":
            scores = [_cosine_score(d) for d in _first(doc.get("distances")) or [None] * len(ids)]
        else:
            embs = _first(doc.get("embeddings")) or [None] * len(ids)
            scores = [_cosine(query.embedding, e) for e in embs]
        rows = list(zip(ids, metas, docs, scores, strict=False))
        if coll.space != "cosine":
            rows.sort(key=lambda r: -r[3])
        chunks = [codec.record_chunk(i, m, d) for i, m, d, _ in rows]
        return QueryChunksResponse(chunks=chunks, scores=[r[3] for r in rows])

    async def _keyword(self, coll: _Collection, query: ChunkQuery) -> QueryChunksResponse:
        terms = codec.query_terms(query.text)
        if not terms:
            return QueryChunksResponse(chunks=[], scores=[])
        clauses = [{"$contains": f" {t} "} for t in terms]
        where = clauses[0] if len(clauses) == 1 else {"$or": clauses}
        body = {"where_document": where, "include": ["documents"], "limit": self.config.keyword_candidates}
        found, total = await asyncio.gather(
            self.client.call("POST", self.client.collections(f"/{coll.id}/get"), body),
            self.client.call("GET", self.client.collections(f"/{coll.id}/count")),
        )
        ids = found.get("ids") or []
        if len(ids) >= self.config.keyword_candidates:
            log.info("chroma_keyword_candidates_capped", collection=coll.name, cap=len(ids), terms=terms)
        docs = found.get("documents") or [None] * len(ids)
        if not coll.lamina:  # foreign documents: score their tokens as Lamina would have stored them
            docs = [codec.search_document(d or "") for d in docs]
        best = await asyncio.to_thread(bm25.rank, ids, docs, terms, int(total or 0), query.k)
        if not best:
            return QueryChunksResponse(chunks=[], scores=[])
        include = ["metadatas"] if coll.lamina else ["metadatas", "documents"]
        got = await self.client.call(
            "POST",
            self.client.collections(f"/{coll.id}/get"),
            {"ids": [i for i, _ in best], "include": include},
        )
        gids = got.get("ids") or []
        gmetas = got.get("metadatas") or [None] * len(gids)
        gdocs = got.get("documents") or [None] * len(gids)
        by_id = {i: (m, d) for i, m, d in zip(gids, gmetas, gdocs, strict=False)}
        chunks, scores = [], []
        for record_id, score in best:
            if record_id in by_id:  # deleted in between: skip
                chunks.append(codec.record_chunk(record_id, *by_id[record_id]))
                scores.append(score)
        return QueryChunksResponse(chunks=chunks, scores=scores)

    async def _preflight(self) -> None:
        if self._max_batch is not None:
            return
        try:
            doc = await self.client.call("GET", "pre-flight-checks")
        except UpstreamError as exc:
            if exc.upstream_status is None:
                raise  # Chroma unreachable: the insert fails with that error
            doc = {}
        self._max_batch = int(doc.get("max_batch_size") or 1000)
        self._base64 = bool(doc.get("supports_base64_encoding")) and sys.byteorder == "little"


def _upsert_payload(chunks: list[Chunk], b64: bool) -> bytes:
    """The upsert request body (runs in a thread: JSON of thousands of embeddings is CPU work)."""
    ids, embeddings, documents, metadatas = [], [], [], []
    for chunk in chunks:
        blob = codec.chunk_blob(chunk)
        ids.append(chunk.chunk_id)
        emb = chunk.embedding or []
        embeddings.append(base64.b64encode(array.array("f", emb).tobytes()).decode() if b64 else emb)
        documents.append(codec.search_document(codec.content_text(chunk.content)))
        metadatas.append(codec.record_metadata(blob))
    body = {"ids": ids, "embeddings": embeddings, "documents": documents, "metadatas": metadatas}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _first(value: Any) -> list[Any]:
    return value[0] if value else []


def _cosine_score(distance: float | None) -> float:
    """Chroma's cosine distance is 1 - cosine similarity; a zero vector's is 1 (score 0)."""
    if distance is None or not math.isfinite(distance):
        return 0.0
    return min(1.0, max(-1.0, 1.0 - distance))


def _cosine(a: list[float], b: list[float] | None) -> float:
    if not b or len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 0.0
    value = dot / (na * nb)
    return min(1.0, max(-1.0, value)) if math.isfinite(value) else 0.0
