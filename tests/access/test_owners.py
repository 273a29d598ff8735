"""Owner records in a real sqlite metadata store: recorded, shared with a second reader of the same
store (another replica), forgotten, and written in one batch when made together."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lamina.access.owners import OwnerStore
from lamina.access.policy import Owner
from lamina.storage import open_kvstore
from lamina.storage.config import SqliteKVStoreConfig

ALICE = Owner("alice", {"roles": ["user"]})


async def test_records_are_shared_through_the_store_and_forgotten(tmp_path: Path) -> None:
    config = SqliteKVStoreConfig(db_path=str(tmp_path / "registry.db"))
    first, second = await open_kvstore(config), await open_kvstore(config)
    try:
        here, there = OwnerStore(first), OwnerStore(second)
        assert await here.get("file", "file-1") is None
        await here.record("file", "file-1", ALICE)
        assert await here.get("file", "file-1") == ALICE
        assert await OwnerStore(second).get("file", "file-1") == ALICE  # a replica reads the same store
        await asyncio.gather(*(here.record("response", f"resp_{i}", ALICE) for i in range(20)))
        assert len(await first.items_with_prefix("access:owner:response::")) == 20
        await here.forget("file", "file-1")
        assert await here.get("file", "file-1") is None
        assert await there.get("file", "file-1") is None
    finally:
        await first.close()
        await second.close()


async def test_a_failed_write_fails_the_requests_waiting_on_it(tmp_path: Path) -> None:
    store = await open_kvstore(SqliteKVStoreConfig(db_path=str(tmp_path / "r.db")))
    owners = OwnerStore(store)
    await store.close()  # the store is gone: recording must fail, not pretend
    results = await asyncio.gather(
        *(owners.record("file", f"f{i}", ALICE) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) and "not open" in str(r) for r in results), results
