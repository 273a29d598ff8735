"""With ``kvstore: {type: postgres}``: chunks are kept in PostgreSQL, the durable copy.

The local SQLite file (in the provider's state directory) and the faiss index are then caches of
PostgreSQL, as the faiss index is of SQLite elsewhere: a fresh machine, a lost disk or a crash
between the two writes is repaired on open by reloading the vector DB from PostgreSQL.

Keys (through the core KV store, so its ``namespace`` applies):

- ``faiss:db:<vector db key>`` → ``{"dimension", "token", "generation"}``
- ``faiss:chunk:<token>:<chunk_id>`` → ``{"doc", "text", "embedding", "order"}`` (embedding: base64
  float32; order: [generation, position], so a reload stores chunks in the order they came, and
  queries break ties as they did before)

Every change first bumps ``generation``, then writes the chunks, then commits the local copy with
``synced = "<token>:<generation>"``; on open a local copy whose ``synced`` differs is reloaded. A
crash anywhere in between leaves them different, so it is never mistaken for up to date. The
token is new for every registration, so chunks of an unregistered vector DB (deleted in the
background) never show up in a new one of the same name.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass

import structlog

from lamina.storage import KVStore

log = structlog.get_logger(__name__)

Row = tuple[str, str, str, bytes]  # chunk_id, doc JSON, text, float32 embedding bytes
CONCURRENCY = 8  # KV writes in flight (the postgres store's pool holds 10 connections by default)


@dataclass
class MirrorMeta:
    dimension: int
    token: str
    generation: int = 0

    @property
    def synced(self) -> str:
        return f"{self.token}:{self.generation}"


class KVMirror:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self._background: set[asyncio.Task] = set()

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.kv.close()

    @staticmethod
    def _db_key(key: str) -> str:
        return f"faiss:db:{key}"

    @staticmethod
    def _chunk_prefix(token: str) -> str:
        return f"faiss:chunk:{token}:"

    async def meta(self, key: str) -> MirrorMeta | None:
        raw = await self.kv.get(self._db_key(key))
        return MirrorMeta(**json.loads(raw)) if raw else None

    async def create(self, key: str, dimension: int) -> MirrorMeta:
        meta = MirrorMeta(dimension=dimension, token=uuid.uuid4().hex)
        await self._put_meta(key, meta)
        return meta

    async def _put_meta(self, key: str, meta: MirrorMeta) -> None:
        value = {"dimension": meta.dimension, "token": meta.token, "generation": meta.generation}
        await self.kv.set(self._db_key(key), json.dumps(value))

    async def write(self, key: str, meta: MirrorMeta, rows: list[Row], deleted: list[str]) -> str:
        """Store ``rows`` and delete ``deleted`` chunk ids; returns the ``synced`` mark to commit locally."""
        meta.generation += 1
        await self._put_meta(key, meta)
        prefix = self._chunk_prefix(meta.token)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def put(position: int, row: Row) -> None:
            chunk_id, doc, text, embedding = row
            value = json.dumps(
                {
                    "doc": doc,
                    "text": text,
                    "embedding": base64.b64encode(embedding).decode(),
                    "order": [meta.generation, position],
                }
            )
            async with gate:
                await self.kv.set(prefix + chunk_id, value)

        async def delete(chunk_id: str) -> None:
            async with gate:
                await self.kv.delete(prefix + chunk_id)

        await asyncio.gather(*(put(i, r) for i, r in enumerate(rows)), *(delete(c) for c in deleted))
        return meta.synced

    async def load(self, meta: MirrorMeta) -> list[Row]:
        prefix = self._chunk_prefix(meta.token)
        items = []
        for key, value in await self.kv.items_with_prefix(prefix):
            item = json.loads(value)
            row = (key[len(prefix) :], item["doc"], item["text"], base64.b64decode(item["embedding"]))
            items.append((item.get("order", [0, 0]), row))
        items.sort(key=lambda pair: pair[0])
        return [row for _, row in items]

    async def drop(self, key: str, meta: MirrorMeta) -> None:
        """Forget the vector DB now; delete its chunks in the background."""
        await self.kv.delete(self._db_key(key))
        task = asyncio.get_running_loop().create_task(self._delete_chunks(meta))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _delete_chunks(self, meta: MirrorMeta) -> None:
        try:
            keys = await self.kv.keys_in_range(
                self._chunk_prefix(meta.token), self._chunk_prefix(meta.token) + "\U0010ffff"
            )
            gate = asyncio.Semaphore(CONCURRENCY)

            async def delete(k: str) -> None:
                async with gate:
                    await self.kv.delete(k)

            await asyncio.gather(*(delete(k) for k in keys))
        except Exception as exc:
            log.warning("faiss_kv_cleanup_failed", token=meta.token, error=str(exc))
