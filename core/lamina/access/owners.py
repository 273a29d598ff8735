"""Who owns each resource: one record per ``kind::id`` (the creator's principal and attributes), kept in
the server's metadata store so every replica sharing it sees the same owners.

Records are cached in the process: an owner never changes while its resource exists, and a delete on
this server drops the record at once (another replica may answer from its cache for a deleted id until
it restarts or the id is deleted there too; ids of new resources are fresh, so no tenant inherits them).
"No owner" is cached for ``UNOWNED_SECONDS`` only (the run config's models are looked up on every
request naming them; a read of the store per request costs ~200 µs of the server's CPU): another
replica's new resource is seen as owned within that time.

Records are written in batches: a request creating a resource waits until its record is in the store
(a crash never leaves a resource it answered for without its owner), but the records of the requests
that arrive while a write is under way go in the next write together (one sqlite commit for all of
them: a stored chat completion per request would otherwise cost a commit each).
"""

from __future__ import annotations

import asyncio
import json
import time

from lamina.access.policy import Owner
from lamina.request_context import PRINCIPAL
from lamina.storage import KVStore

_PREFIX = "access:owner:"
_CACHE_LIMIT = 100_000
UNOWNED_SECONDS = 5.0


class OwnerStore:
    def __init__(self, store: KVStore) -> None:
        self.store = store
        self._cache: dict[str, Owner] = {}
        self._unowned: dict[str, float] = {}  # key -> until (time.monotonic())
        self._pending: dict[str, str] = {}  # records waiting for the next write
        self._next: asyncio.Future[None] | None = None  # done when the next write is in the store
        self._writer: asyncio.Task[None] | None = None

    @staticmethod
    def _key(kind: str, resource_id: str) -> str:
        return f"{_PREFIX}{kind}::{resource_id}"

    async def get(self, kind: str, resource_id: str) -> Owner | None:
        key = self._key(kind, resource_id)
        owner = self._cache.get(key)
        if owner is not None:
            return owner
        if self._unowned.get(key, 0.0) > time.monotonic():
            return None
        raw = await self.store.get(key)
        if raw is None:
            if len(self._unowned) >= _CACHE_LIMIT:
                self._unowned.clear()
            self._unowned[key] = time.monotonic() + UNOWNED_SECONDS
            return None
        data = json.loads(raw)
        owner = Owner(data["principal"], data.get("attributes") or {})
        self._remember(key, owner)
        return owner

    async def record(self, kind: str, resource_id: str, owner: Owner) -> None:
        key = self._key(kind, resource_id)
        self._unowned.pop(key, None)
        self._remember(key, owner)
        self._pending[key] = json.dumps(owner.to_json())
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        written = self._next
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        try:
            await asyncio.shield(written)
        except Exception:
            self._cache.pop(key, None)  # not in the store: this process must not act as if it were
            raise

    async def _write(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # records made in this turn of the loop join the batch
            batch, done = self._pending, self._next
            self._pending, self._next = {}, None
            assert done is not None
            try:
                await self.store.set_many(list(batch.items()))
            except Exception as exc:  # each waiting request fails with it (a 500 naming the store)
                done.set_exception(exc)
                done.exception()  # retrieved: the requests may have gone
            else:
                done.set_result(None)

    async def forget(self, kind: str, resource_id: str) -> None:
        key = self._key(kind, resource_id)
        self._cache.pop(key, None)
        await self.store.delete(key)

    def cached(self, kind: str, resource_id: str) -> Owner | None:
        return self._cache.get(self._key(kind, resource_id))

    def _remember(self, key: str, owner: Owner) -> None:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = owner


# The owner records of this server while access control is on (set by the app's lifecycle), for the
# resources made inside the server on behalf of a caller rather than by a route: see record_for_caller.
_ACTIVE: OwnerStore | None = None


def activate(store: OwnerStore | None) -> None:
    global _ACTIVE
    _ACTIVE = store


async def record_for_caller(kind: str, resource_id: str) -> None:
    """Record the current principal as the owner of ``kind::resource_id``, a resource the server made on
    its behalf outside a route's create (a batch's output file, a job's results dataset: a job runs as
    its submitter). Nothing without access control or a principal (the run config's resources stay
    unowned); nothing when that owner is recorded already (the route's own create)."""
    store, owner = _ACTIVE, caller()
    if store is None or owner is None:
        return
    if store.cached(kind, resource_id) != owner:
        await store.record(kind, resource_id, owner)


def caller() -> Owner | None:
    """The owner a resource made now records: the request's principal (None: auth off or an open path;
    such resources stay unowned). For resources that keep their owner in their own rows (a stored chat
    completion: lamina.storage.inference_store)."""
    principal = PRINCIPAL.get()
    return None if principal is None else Owner.of(principal)
