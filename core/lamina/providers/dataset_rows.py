"""What DatasetIO providers share: rows appended to a dataset, kept in a KV store, and the paging
that puts them after the source's rows.

Appended rows are stored in chunks (one key per chunk of at most ``CHUNK_ROWS`` rows, plus one key
holding the chunk sizes), so a page of them reads only the chunks it overlaps, and an append writes
only new keys and the sizes. Providers keep their source's rows however suits them and answer
``SourceRows.read``; ``page`` does the rest.
"""

from __future__ import annotations

import asyncio
import json
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from itertools import accumulate
from typing import Any

from lamina.apis.datasets import IterRowsResponse
from lamina.storage import KVStore

CHUNK_ROWS = 1000
_PREFIX = "appended:"


class AppendedRows:
    """Rows appended to datasets, persisted in ``store`` (they survive a restart)."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self._sizes: dict[str, list[int]] = {}  # dataset id -> rows in each chunk, in order
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, dataset_id: str) -> asyncio.Lock:
        return self._locks.setdefault(dataset_id, asyncio.Lock())

    async def sizes(self, dataset_id: str) -> list[int]:
        sizes = self._sizes.get(dataset_id)
        if sizes is None:
            raw = await self.store.get(f"{_PREFIX}{dataset_id}:sizes")
            sizes = self._sizes[dataset_id] = json.loads(raw) if raw else []
        return sizes

    async def count(self, dataset_id: str) -> int:
        return sum(await self.sizes(dataset_id))

    async def append(self, dataset_id: str, rows: list[dict[str, Any]]) -> None:
        async with self._lock(dataset_id):
            sizes = list(await self.sizes(dataset_id))
            for i in range(0, len(rows), CHUNK_ROWS):
                chunk = rows[i : i + CHUNK_ROWS]
                await self.store.set(_chunk_key(dataset_id, len(sizes)), json.dumps(chunk))
                sizes.append(len(chunk))
            # The sizes are written last: a crash before it leaves unlisted chunks, never a listed
            # chunk that is missing.
            await self.store.set(f"{_PREFIX}{dataset_id}:sizes", json.dumps(sizes))
            self._sizes[dataset_id] = sizes

    async def read(self, dataset_id: str, start: int, stop: int | None) -> list[dict[str, Any]]:
        """Appended rows ``[start, stop)`` (``stop`` None: to the last)."""
        sizes = await self.sizes(dataset_id)
        ends = list(accumulate(sizes))
        total = ends[-1] if ends else 0
        stop = total if stop is None else min(stop, total)
        out: list[dict[str, Any]] = []
        chunk = bisect_right(ends, start)
        while start < stop and chunk < len(sizes):
            chunk_start = ends[chunk] - sizes[chunk]
            raw = await self.store.get(_chunk_key(dataset_id, chunk))
            rows = json.loads(raw) if raw else []
            out.extend(rows[start - chunk_start : stop - chunk_start])
            start = ends[chunk]
            chunk += 1
        return out

    async def drop(self, dataset_id: str) -> None:
        async with self._lock(dataset_id):
            for chunk in range(len(await self.sizes(dataset_id))):
                await self.store.delete(_chunk_key(dataset_id, chunk))
            await self.store.delete(f"{_PREFIX}{dataset_id}:sizes")
            self._sizes.pop(dataset_id, None)


def _chunk_key(dataset_id: str, chunk: int) -> str:
    return f"{_PREFIX}{dataset_id}:chunk:{chunk:09d}"


# read(start, stop) -> the source's rows [start, stop) (fewer at its end; stop None: to the end)
ReadSource = Callable[[int, int | None], Awaitable[list[dict[str, Any]]]]


async def page(
    dataset_id: str,
    start: int,
    limit: int | None,
    read_source: ReadSource,
    count_source: Callable[[], Awaitable[int]],
    appended: AppendedRows,
) -> IterRowsResponse:
    """Rows ``[start, start + limit)`` of the source followed by its appended rows, and ``has_more``.

    With nothing appended, the source is asked for one row more than the page (that row says whether
    more follow), so its length is never needed; otherwise ``count_source`` places the appended rows.
    """
    extra = await appended.count(dataset_id)
    if extra == 0:
        if limit is None:
            return IterRowsResponse(data=await read_source(start, None), has_more=False)
        rows = await read_source(start, start + limit + 1)
        return IterRowsResponse(data=rows[:limit], has_more=len(rows) > limit)
    total_source = await count_source()
    stop = total_source + extra if limit is None else min(start + limit, total_source + extra)
    rows: list[dict[str, Any]] = []
    if start < total_source:
        rows = await read_source(start, min(stop, total_source))
    if stop > total_source:
        rows += await appended.read(dataset_id, max(start - total_source, 0), stop - total_source)
    return IterRowsResponse(data=rows, has_more=stop < total_source + extra)
