"""SQLite key-value store (aiosqlite): one connection, WAL journal, busy timeout, autocommit.

WAL lets readers proceed while one writer commits, and the busy timeout makes a second process on
the same file wait for the lock instead of failing at once. Every write is one statement, so the
connection autocommits: a write is one hand-off to aiosqlite's thread, not two (with ``commit()``).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path

import aiosqlite

from lamina.storage.config import SqliteKVStoreConfig
from lamina.storage.connections import BUSY_TIMEOUT_MS as BUSY_TIMEOUT_MS  # re-exported
from lamina.storage.connections import open_sqlite
from lamina.storage.kvstore import KVStore, StorageError

_MANY = 500  # rows per statement of set_many (two variables a row; SQLite allows 32,766)


class SqliteKVStore(KVStore):
    def __init__(self, config: SqliteKVStoreConfig) -> None:
        super().__init__(config.namespace)
        self.path = Path(config.db_path).expanduser()
        self._conn: aiosqlite.Connection | None = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StorageError(f"sqlite store {self.path} is not open")
        return self._conn

    async def initialize(self) -> None:
        try:
            self._conn = await open_sqlite(self.path, autocommit=True)
            await self._conn.execute(
                "CREATE TABLE IF NOT EXISTS kvstore (key TEXT PRIMARY KEY, value TEXT, expiration REAL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the sqlite store {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def get(self, key: str) -> str | None:
        # execute_fetchall: one hand-off to aiosqlite's thread (a cursor's execute, fetch and close
        # are three, each costing more than the query)
        try:
            rows = await self.conn.execute_fetchall(
                "SELECT value FROM kvstore WHERE key = ? AND (expiration IS NULL OR expiration > ?)",
                (self._k(key), time.time()),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc
        return next(iter(rows))[0] if rows else None

    async def set(self, key: str, value: str, expiration: datetime | None = None) -> None:
        try:
            await self.conn.execute(
                "INSERT INTO kvstore (key, value, expiration) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expiration = excluded.expiration",
                (self._k(key), value, expiration.timestamp() if expiration else None),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc

    async def set_many(self, items: list[tuple[str, str]]) -> None:
        # One multi-row statement per chunk: the connection autocommits, so executemany would commit each
        # row apart; this is one hand-off to aiosqlite's thread and one commit for up to _MANY rows.
        try:
            for start in range(0, len(items), _MANY):
                chunk = items[start : start + _MANY]
                await self.conn.execute(
                    "INSERT INTO kvstore (key, value, expiration) VALUES "
                    + ", ".join(["(?, ?, NULL)"] * len(chunk))
                    + " ON CONFLICT(key) DO UPDATE SET value = excluded.value, expiration = NULL",
                    [part for key, value in chunk for part in (self._k(key), value)],
                )
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc

    async def add(self, key: str, value: str) -> bool:
        try:
            # An expired row is replaced; a live one is left alone (the WHERE of the upsert fails).
            async with self.conn.execute(
                "INSERT INTO kvstore (key, value, expiration) VALUES (?, ?, NULL) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expiration = NULL "
                "WHERE kvstore.expiration IS NOT NULL AND kvstore.expiration <= ?",
                (self._k(key), value, time.time()),
            ) as cursor:
                added = cursor.rowcount == 1
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc
        return added

    async def increment(self, key: str, amount: int, expiration: datetime) -> int:
        now = time.time()
        try:
            # A live row adds to its value and keeps its expiration; an expired one starts again.
            rows = await self.conn.execute_fetchall(
                "INSERT INTO kvstore (key, value, expiration) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET "
                "value = CASE WHEN kvstore.expiration IS NOT NULL AND kvstore.expiration <= ? "
                "THEN excluded.value ELSE CAST(CAST(kvstore.value AS INTEGER) + ? AS TEXT) END, "
                "expiration = CASE WHEN kvstore.expiration IS NOT NULL AND kvstore.expiration <= ? "
                "THEN excluded.expiration ELSE kvstore.expiration END "
                "RETURNING value",
                (self._k(key), str(amount), expiration.timestamp(), now, amount, now),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc
        return int(next(iter(rows))[0])

    async def delete(self, key: str) -> None:
        try:
            await self.conn.execute("DELETE FROM kvstore WHERE key = ?", (self._k(key),))
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc

    async def items_in_range(self, start_key: str, end_key: str) -> list[tuple[str, str]]:
        try:
            rows = await self.conn.execute_fetchall(
                "SELECT key, value FROM kvstore WHERE key >= ? AND key <= ? "
                "AND (expiration IS NULL OR expiration > ?) ORDER BY key",
                (self._k(start_key), self._k(end_key), time.time()),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc
        return [(self._strip(k), v) for k, v in rows]
