"""A tiny Vector IO provider for tests: chunks in a dict, saved as JSON in the provider's state dir.

Vector mode scores by cosine similarity (brute force); keyword mode by BM25 over lower-cased
``\\w+`` tokens, returning only chunks that share a term with the query. Not for production: every
insert rewrites the vector DB's file.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lamina.apis.common import content_to_text
from lamina.apis.vector_io import Chunk, ChunkQuery, QueryChunksResponse, VectorDB

_WORD = re.compile(r"\w+")


class Config(BaseModel):
    pass


async def create_provider(config: Config, deps: dict[Any, Any], context: Any) -> MemoryVectors:
    return MemoryVectors(Path(context.state_dir))


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class MemoryVectors:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.dbs: dict[str, dict[str, dict[str, Any]]] = {}  # provider id -> chunk_id -> chunk doc

    def _path(self, vector_db: VectorDB) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", vector_db.provider_vector_db_id)
        return self.state_dir / f"{safe}.json"

    def _save(self, vector_db: VectorDB) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._path(vector_db).write_text(json.dumps(self.dbs[vector_db.provider_vector_db_id]))

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        if vector_db.provider_vector_db_id in self.dbs:
            return
        path = self._path(vector_db)
        self.dbs[vector_db.provider_vector_db_id] = json.loads(path.read_text()) if path.exists() else {}

    async def unregister_vector_db(self, vector_db: VectorDB) -> None:
        self.dbs.pop(vector_db.provider_vector_db_id, None)
        self._path(vector_db).unlink(missing_ok=True)

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        db = self.dbs[vector_db.provider_vector_db_id]
        for chunk in chunks:
            db[chunk.chunk_id] = chunk.model_dump(mode="json")
        self._save(vector_db)

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        db = self.dbs[vector_db.provider_vector_db_id]
        for chunk_id in chunk_ids:
            db.pop(chunk_id, None)
        self._save(vector_db)

    async def query_chunks(self, vector_db: VectorDB, query: ChunkQuery) -> QueryChunksResponse:
        docs = list(self.dbs[vector_db.provider_vector_db_id].values())
        if query.mode == "vector":
            scored = [(d, _cosine(query.embedding or [], d["embedding"])) for d in docs]
        else:
            scored = _bm25(query.text, docs)
        scored.sort(key=lambda ds: -ds[1])
        top = scored[: query.k]
        return QueryChunksResponse(
            chunks=[Chunk.model_validate({**d, "embedding": None}) for d, _ in top],
            scores=[s for _, s in top],
        )


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return max(-1.0, min(1.0, dot / norm)) if norm else 0.0


def _bm25(text: str, docs: list[dict[str, Any]], k1: float = 1.2, b: float = 0.75) -> list[tuple[Any, float]]:
    terms = set(_tokens(text))
    bags = [Counter(_tokens(content_to_text(d["content"]))) for d in docs]
    if not docs or not terms:
        return []
    avg = sum(sum(bag.values()) for bag in bags) / len(bags) or 1.0
    df = {t: sum(1 for bag in bags if t in bag) for t in terms}
    out = []
    for doc, bag in zip(docs, bags, strict=True):
        length = sum(bag.values())
        score = 0.0
        for t in terms & bag.keys():
            idf = math.log(1 + (len(docs) - df[t] + 0.5) / (df[t] + 0.5))
            score += idf * bag[t] * (k1 + 1) / (bag[t] + k1 * (1 - b + b * length / avg))
        if score > 0:
            out.append((doc, score))
    return out
