"""lamina.resources.registry: reads from memory, listings from the store, hot-path listings by age."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import TypeAdapter

from lamina.resources.registry import ResourceRegistry
from lamina.storage import KVStoreConfig, open_kvstore


async def test_replicas_sharing_a_store_and_hot_listings(tmp_path: Path) -> None:
    config = TypeAdapter(KVStoreConfig).validate_python({"type": "sqlite", "db_path": str(tmp_path / "r.db")})
    store = await open_kvstore(config)
    try:
        mine, other = ResourceRegistry(), ResourceRegistry()  # two replicas on one database
        await mine.attach(store)
        await other.attach(store)
        await mine.put("shield", "a", {"identifier": "a"})
        assert [d["identifier"] for d in await mine.list("shield", max_age=60)] == ["a"]
        assert await other.get("shield", "a") == {"identifier": "a"}  # a miss reads the store
        await other.list("shield")
        await mine.put("shield", "b", {"identifier": "b"})
        # A hot listing may be up to max_age old: the other replica's new shield is not in it yet...
        assert [d["identifier"] for d in await other.list("shield", max_age=60)] == ["a"]
        # ...a plain listing reads the store, and refreshes what hot listings see.
        assert sorted(d["identifier"] for d in await other.list("shield")) == ["a", "b"]
        assert sorted(d["identifier"] for d in await other.list("shield", max_age=60)) == ["a", "b"]
        await other.delete("shield", "a")  # this process's own changes show at once
        assert [d["identifier"] for d in await other.list("shield", max_age=60)] == ["b"]
        assert [d["identifier"] for d in await mine.list("shield")] == ["b"]
    finally:
        await store.close()


class SlowStore:
    """A KV store whose listing takes a while (a database round trip), to interleave writes with it."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def items_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        snapshot = sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))
        await asyncio.sleep(0.05)
        return snapshot

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)


async def test_writes_during_a_listing_win_over_its_snapshot() -> None:
    registry = ResourceRegistry()
    await registry.attach(SlowStore())  # type: ignore[arg-type]
    await registry.put("shield", "a", {"identifier": "a"})
    listing = asyncio.create_task(registry.list("shield"))
    await asyncio.sleep(0.01)
    await registry.delete("shield", "a")  # DELETE /v1/shields/a completes while the store is read
    await registry.put("shield", "b", {"identifier": "b"})
    assert [d["identifier"] for d in await listing] == ["b"]
    assert await registry.get("shield", "a") is None
    assert [d["identifier"] for d in await registry.list("shield", max_age=60)] == ["b"]
