"""The resource registry: every registered resource, persisted in the metadata store.

Reads are served from memory; a miss falls back to the store so that replicas sharing one
database see each other's registrations. Lists read the store, except where a caller on a hot path
accepts a listing up to ``max_age`` seconds old (this process's own changes are always in it; other
replicas' show within ``max_age``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from lamina.storage import KVStore

_PREFIX = "resource:"


def _key(resource_type: str, identifier: str) -> str:
    return f"{_PREFIX}{resource_type}:{identifier}"


class ResourceRegistry:
    def __init__(self) -> None:
        self._store: KVStore | None = None
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._listed_at: dict[str, float] = {}  # resource type -> monotonic time of its last store listing
        # Bumped by every put/delete of a key: a listing that was reading the store meanwhile must not
        # undo that change in the cache (bring a deleted resource back, or drop a new one).
        self._writes: dict[tuple[str, str], int] = {}

    @property
    def store(self) -> KVStore:
        if self._store is None:
            raise RuntimeError("the registry is used before the stack started (no store attached)")
        return self._store

    async def attach(self, store: KVStore) -> None:
        """Use ``store`` from now on and load everything it holds."""
        self._store = store
        self._cache.clear()
        self._listed_at.clear()
        for key, value in await self.store.items_with_prefix(_PREFIX):
            rtype, _, identifier = key[len(_PREFIX) :].partition(":")
            self._cache[(rtype, identifier)] = json.loads(value)

    def cached(self, resource_type: str, identifier: str) -> dict[str, Any] | None:
        return self._cache.get((resource_type, identifier))

    async def get(self, resource_type: str, identifier: str) -> dict[str, Any] | None:
        found = self._cache.get((resource_type, identifier))
        if found is not None:
            return found
        raw = await self.store.get(_key(resource_type, identifier))
        if raw is None:
            return None
        found = json.loads(raw)
        self._cache[(resource_type, identifier)] = found
        return found

    async def list(self, resource_type: str, max_age: float = 0.0) -> list[dict[str, Any]]:
        """Every resource of a type; from memory when the store was listed under ``max_age`` s ago."""
        listed_at = self._listed_at.get(resource_type)
        if max_age > 0 and listed_at is not None and time.monotonic() - listed_at < max_age:
            return [doc for (rtype, _), doc in self._cache.items() if rtype == resource_type]
        prefix = f"{_PREFIX}{resource_type}:"
        writes_before = dict(self._writes)
        items = await self.store.items_with_prefix(prefix)
        touched = {k for k, n in self._writes.items() if writes_before.get(k) != n and k[0] == resource_type}
        listed: dict[str, dict[str, Any]] = {}
        for key, value in items:
            listed[key[len(prefix) :]] = json.loads(value)
        for identifier, doc in listed.items():
            if (resource_type, identifier) not in touched:
                self._cache[(resource_type, identifier)] = doc
        for rtype, identifier in list(self._cache):
            if rtype == resource_type and identifier not in listed and (rtype, identifier) not in touched:
                del self._cache[(rtype, identifier)]
        self._listed_at[resource_type] = time.monotonic()
        # What this process changed while the store was read wins over the snapshot.
        return [doc for (rtype, _), doc in self._cache.items() if rtype == resource_type]

    async def put(self, resource_type: str, identifier: str, doc: dict[str, Any]) -> None:
        await self.store.set(_key(resource_type, identifier), json.dumps(doc))
        self._cache[(resource_type, identifier)] = doc
        self._bump(resource_type, identifier)

    async def delete(self, resource_type: str, identifier: str) -> None:
        await self.store.delete(_key(resource_type, identifier))
        self._cache.pop((resource_type, identifier), None)
        self._bump(resource_type, identifier)

    def _bump(self, resource_type: str, identifier: str) -> None:
        key = (resource_type, identifier)
        self._writes[key] = self._writes.get(key, 0) + 1
