"""PostgreSQL key-value store (asyncpg pool).

Keys use the "C" collation so that range and prefix scans follow code point order whatever the
database's locale, matching the SQLite backend.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from lamina.storage.config import PostgresKVStoreConfig
from lamina.storage.connections import create_postgres_schema, open_postgres_pool, postgres_errors
from lamina.storage.kvstore import KVStore, StorageError

_ERRORS = postgres_errors()


class PostgresKVStore(KVStore):
    def __init__(self, config: PostgresKVStoreConfig) -> None:
        super().__init__(config.namespace)
        self.config = config
        self.table = config.table_name  # validated as a plain identifier
        self._pool: asyncpg.Pool | None = None

    @property
    def where(self) -> str:
        c = self.config
        return f"postgres store {c.user}@{c.host}:{c.port}/{c.db} table {self.table}"

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError(f"{self.where} is not open")
        return self._pool

    async def initialize(self) -> None:
        self._pool = await open_postgres_pool(self.config, self.where)
        try:
            async with self._pool.acquire() as conn:
                schema = (
                    f"CREATE TABLE IF NOT EXISTS {self.table} ("
                    f'key TEXT COLLATE "C" PRIMARY KEY, value TEXT, expiration TIMESTAMPTZ)'
                )
                await create_postgres_schema(conn, self.table, [schema])
        except _ERRORS as exc:
            raise StorageError(f"cannot open the {self.where}: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def get(self, key: str) -> str | None:
        try:
            return await self.pool.fetchval(
                f"SELECT value FROM {self.table} "
                f"WHERE key = $1 AND (expiration IS NULL OR expiration > now())",
                self._k(key),
            )
        except _ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    async def set(self, key: str, value: str, expiration: datetime | None = None) -> None:
        try:
            await self.pool.execute(
                f"INSERT INTO {self.table} (key, value, expiration) VALUES ($1, $2, $3) "
                f"ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expiration = EXCLUDED.expiration",
                self._k(key),
                value,
                expiration,
            )
        except _ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    async def add(self, key: str, value: str) -> bool:
        try:
            # An expired row is replaced; a live one is left alone (the WHERE of the upsert fails). A
            # concurrent add of the same key waits for the first to commit, then finds its row.
            status = await self.pool.execute(
                f"INSERT INTO {self.table} AS kv (key, value, expiration) VALUES ($1, $2, NULL) "
                f"ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expiration = NULL "
                f"WHERE kv.expiration IS NOT NULL AND kv.expiration <= now()",
                self._k(key),
                value,
            )
        except _ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        return status == "INSERT 0 1"

    async def increment(self, key: str, amount: int, expiration: datetime) -> int:
        try:
            # A live row adds to its value and keeps its expiration; an expired one starts again. A
            # concurrent increment of the same key waits for the first to commit, then adds to it.
            value = await self.pool.fetchval(
                f"INSERT INTO {self.table} AS kv (key, value, expiration) VALUES ($1, $2::bigint::text, $3) "
                f"ON CONFLICT (key) DO UPDATE SET "
                f"value = CASE WHEN kv.expiration IS NOT NULL AND kv.expiration <= now() "
                f"THEN EXCLUDED.value ELSE (kv.value::bigint + $2::bigint)::text END, "
                f"expiration = CASE WHEN kv.expiration IS NOT NULL AND kv.expiration <= now() "
                f"THEN EXCLUDED.expiration ELSE kv.expiration END "
                f"RETURNING value",
                self._k(key),
                amount,
                expiration,
            )
        except _ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        return int(value)

    async def delete(self, key: str) -> None:
        try:
            await self.pool.execute(f"DELETE FROM {self.table} WHERE key = $1", self._k(key))
        except _ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    async def items_in_range(self, start_key: str, end_key: str) -> list[tuple[str, str]]:
        try:
            rows = await self.pool.fetch(
                f'SELECT key, value FROM {self.table} WHERE key >= $1 COLLATE "C" AND key <= $2 COLLATE "C" '
                f'AND (expiration IS NULL OR expiration > now()) ORDER BY key COLLATE "C"',
                self._k(start_key),
                self._k(end_key),
            )
        except _ERRORS as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        return [(self._strip(r["key"]), r["value"]) for r in rows]
