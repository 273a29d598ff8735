"""The KV store contract, run against both backends: SQLite on disk and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from lamina.storage import KVStore, KVStoreConfig, PostgresKVStoreConfig, StorageError, open_kvstore
from lamina.testing.postgres import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    if request.param == "sqlite":
        return {"type": "sqlite", "db_path": str(tmp_path / "kv.db")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    # A table per test keeps tests independent on the shared server.
    return server.kvstore_config(table_name=f"kv_{uuid.uuid4().hex[:12]}")


async def _open(cfg: dict, **overrides: object) -> KVStore:
    return await open_kvstore(TypeAdapter(KVStoreConfig).validate_python({**cfg, **overrides}))


async def test_set_get_replace_delete(store_config: dict) -> None:
    store = await _open(store_config)
    try:
        assert await store.get("a") is None
        await store.set("a", "1")
        assert await store.get("a") == "1"
        await store.set("a", "2")
        assert await store.get("a") == "2"
        await store.delete("a")
        assert await store.get("a") is None
        await store.delete("a")  # deleting a missing key is fine
    finally:
        await store.close()


async def test_set_many_inserts_and_replaces(store_config: dict) -> None:
    store = await _open(store_config)
    try:
        await store.set("a", "old", expiration=datetime.now(UTC) + timedelta(seconds=60))
        await store.set_many([("a", "1"), ("b", "2")])
        await store.set_many([])
        assert [await store.get("a"), await store.get("b")] == ["1", "2"]
        many = [(f"k{n:04}", str(n)) for n in range(1201)]  # more than one statement's worth on SQLite
        await store.set_many(many)
        assert await store.items_with_prefix("k") == many
    finally:
        await store.close()


async def test_ranges_and_prefixes_follow_code_point_order(store_config: dict) -> None:
    store = await _open(store_config)
    keys = ["model:a", "model:b/c", "model:B", "model:é", "model;", "modek:z", "model:"]
    try:
        for key in keys:
            await store.set(key, key.upper())
        items = await store.items_with_prefix("model:")
        assert [k for k, _ in items] == sorted(k for k in keys if k.startswith("model:"))
        assert dict(items)["model:b/c"] == "MODEL:B/C"
        assert await store.keys_in_range("model:a", "model:b/c") == ["model:a", "model:b/c"]
        assert await store.values_in_range("model:B", "model:a") == ["MODEL:B", "MODEL:A"]
    finally:
        await store.close()


async def test_expiration_hides_the_key(store_config: dict) -> None:
    store = await _open(store_config)
    try:
        await store.set("gone", "x", expiration=datetime.now(UTC) - timedelta(seconds=1))
        await store.set("stays", "y", expiration=datetime.now(UTC) + timedelta(hours=1))
        assert await store.get("gone") is None
        assert await store.get("stays") == "y"
        assert await store.items_with_prefix("") == [("stays", "y")]
    finally:
        await store.close()


async def test_add_inserts_only_a_missing_or_expired_key(store_config: dict) -> None:
    store = await _open(store_config)
    try:
        assert await store.add("k", "first") is True
        assert await store.add("k", "second") is False
        assert await store.get("k") == "first"
        await store.set("old", "x", expiration=datetime.now(UTC) - timedelta(seconds=1))
        assert await store.add("old", "new") is True
        assert await store.get("old") == "new"
        await store.set("live", "x", expiration=datetime.now(UTC) + timedelta(hours=1))
        assert await store.add("live", "new") is False
        assert await store.get("live") == "x"
    finally:
        await store.close()


async def test_add_of_one_key_from_two_stores_has_one_winner(store_config: dict) -> None:
    # Two stores on one database stand for two server processes: each key goes to exactly one of them.
    one, two = await _open(store_config), await _open(store_config)
    try:
        keys = [f"n{i:03d}" for i in range(40)]
        pairs = ((one, "one"), (two, "two"))
        won = await asyncio.gather(*(s.add(k, name) for k in keys for s, name in pairs))
        assert won.count(True) == len(keys)
        for i, key in enumerate(keys):
            winner = "one" if won[2 * i] else "two"
            assert won[2 * i] != won[2 * i + 1] and await two.get(key) == winner
    finally:
        await one.close()
        await two.close()


async def test_increment_from_two_stores_loses_no_count(store_config: dict) -> None:
    # Two stores on one database stand for two replicas counting one client's requests.
    one, two = await _open(store_config), await _open(store_config)
    later = datetime.now(UTC) + timedelta(hours=1)
    try:
        counts = await asyncio.gather(*(s.increment("n", 1, later) for _ in range(20) for s in (one, two)))
        assert sorted(counts) == list(range(1, 41))
        assert await one.increment("n", 5, later) == 45 and await two.get("n") == "45"
        await one.set("old", "7", expiration=datetime.now(UTC) - timedelta(seconds=1))
        assert await two.increment("old", 3, later) == 3  # an expired count starts again
    finally:
        await one.close()
        await two.close()


async def test_namespaces_share_one_database(store_config: dict) -> None:
    one = await _open(store_config, namespace="one")
    two = await _open(store_config, namespace="two")
    try:
        await one.set("k", "from-one")
        await two.set("k", "from-two")
        assert await one.get("k") == "from-one"
        assert await two.get("k") == "from-two"
        assert await one.items_with_prefix("") == [("k", "from-one")]
    finally:
        await one.close()
        await two.close()


async def test_data_survives_reopening(store_config: dict) -> None:
    store = await _open(store_config)
    await store.set("persist", "yes")
    await store.close()
    again = await _open(store_config)
    try:
        assert await again.get("persist") == "yes"
    finally:
        await again.close()


async def test_concurrent_writers(store_config: dict) -> None:
    stores = [await _open(store_config) for _ in range(3)]
    try:
        await asyncio.gather(
            *(s.set(f"k{i:03d}-{j}", str(i)) for i in range(50) for j, s in enumerate(stores))
        )
        assert len(await stores[0].items_with_prefix("k")) == 150
    finally:
        for s in stores:
            await s.close()


async def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    store = await _open({"type": "sqlite", "db_path": str(tmp_path / "sub" / "kv.db")})
    try:
        conn = store.conn  # type: ignore[attr-defined]
        async with conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with conn.execute("PRAGMA busy_timeout") as cur:
            assert (await cur.fetchone())[0] == 5000
    finally:
        await store.close()


async def test_unreachable_postgres_is_a_storage_error_naming_the_server() -> None:
    from lamina.testing.processes import free_port

    port = free_port()
    with pytest.raises(StorageError, match=rf"127\.0\.0\.1:{port}/llamastack"):
        await _open({"type": "postgres", "host": "127.0.0.1", "port": port, "user": "nobody"})


async def test_unopenable_sqlite_path_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot open the sqlite store"):
        await _open({"type": "sqlite", "db_path": str(blocker / "kv.db")})


def test_config_rejects_unsafe_table_names() -> None:
    with pytest.raises(ValidationError, match="plain SQL identifier"):
        PostgresKVStoreConfig(user="u", table_name="kv; DROP TABLE x")


def test_config_unknown_type_names_the_choices() -> None:
    with pytest.raises(ValidationError, match="'sqlite', 'postgres'"):
        TypeAdapter(KVStoreConfig).validate_python({"type": "mongo"})
