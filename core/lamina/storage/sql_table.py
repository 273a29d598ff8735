"""One SQL table of a store, on SQLite (aiosqlite) or PostgreSQL (asyncpg): the plumbing written once.

A store (files metadata, stored responses, ...) subclasses ``SqlTable`` with its own methods, written
once with ``self._p(i)`` placeholders and run through ``_execute`` / ``_fetch``, and its schema per
backend (``_schema_for``). Its SQLite and PostgreSQL classes then only combine it with
``SqliteTable`` or ``PostgresTable``::

    class FilesStore(SqlTable): ...                       # the store's statements
    class SqliteFilesStore(SqliteTable, FilesStore): ...  # + one SQLite connection
    class PostgresFilesStore(PostgresTable, FilesStore): ...  # + an asyncpg pool

SQLite: one connection (WAL, busy timeout), writes serialized by a lock and rolled back on failure, so
one failed write never undoes another; other processes on the same file wait their turn. PostgreSQL:
a pool; each statement is its own transaction, so replicas share the table. Database failures are
``StorageError`` naming the store (``where``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from lamina.storage.config import PostgresSqlStoreConfig, SqliteSqlStoreConfig
from lamina.storage.connections import (
    BUSY_TIMEOUT_MS,
    create_postgres_schema,
    open_postgres_pool,
    open_sqlite,
    postgres_errors,
)
from lamina.storage.kvstore import StorageError

Backend = Literal["sqlite", "postgres"]


class SqlTable(ABC):
    #: what the store is, for messages ("files store")
    what: ClassVar[str] = "store"

    def __init__(self, table: str) -> None:
        self.table = table

    @property
    @abstractmethod
    def where(self) -> str:
        """The store and its database, for messages."""

    @abstractmethod
    async def initialize(self) -> None:
        """Open the database and create the table and indexes if missing."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _execute(self, sql: str, params: list[Any]) -> int:
        """Run one write statement and commit it; the number of rows it changed."""

    async def _execute_many(self, sql: str, rows: list[Any]) -> None:
        """Run one write statement once per row of parameters, all in one transaction."""
        await self._execute_batches([(sql, rows)])

    @abstractmethod
    async def _execute_batches(self, batches: list[tuple[str, list[Any]]]) -> None:
        """Run each (write statement, rows of parameters) of ``batches``, all in one transaction."""

    @abstractmethod
    async def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _p(self, i: int) -> str:
        """The i-th (1-based) placeholder."""

    @abstractmethod
    def _schema_for(self, backend: Backend) -> list[str]:
        """The statements that create the table and its indexes (``IF NOT EXISTS``) on ``backend``, and
        the ``ALTER TABLE ... ADD COLUMN`` of columns added since (on SQLite one whose column exists is
        skipped; PostgreSQL says ``ADD COLUMN IF NOT EXISTS``)."""


class SqliteTable(SqlTable):
    #: PRAGMA synchronous (None: SQLite's default, FULL)
    synchronous: ClassVar[str | None] = "NORMAL"
    #: Start each write with BEGIN IMMEDIATE. A store that several processes write at once needs it: a
    #: deferred write that finds another connection's commit newer than its read snapshot fails at once
    #: with "database is locked" (SQLITE_BUSY_SNAPSHOT), without waiting out the busy timeout.
    immediate_writes: ClassVar[bool] = False
    #: further ``PRAGMA``s of this store's connection (e.g. ``cache_size=-65536``)
    pragmas: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: SqliteSqlStoreConfig) -> None:
        super().__init__(config.table_name)
        if not config.db_path:
            raise ValueError(f"db_path is unset for the sqlite {self.what}")
        self.path = Path(config.db_path).expanduser()
        self._conn: Any = None
        self._write_lock = asyncio.Lock()  # writes, and reads (see _fetch)

    @property
    def where(self) -> str:
        return f"sqlite {self.what} {self.path}"

    def _p(self, i: int) -> str:
        return "?"

    async def initialize(self) -> None:
        # Processes opening one new file at once (replicas, workers) race to switch it to WAL and
        # create the schema; SQLite answers the loser "database is locked" at once, without its busy
        # timeout, so the opening is retried for as long as that timeout. The schema is created under
        # BEGIN IMMEDIATE, which waits for the write lock instead of failing on an upgrade.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._conn = await open_sqlite(self.path, synchronous=self.synchronous)
                for pragma in self.pragmas:
                    await self._conn.execute(f"PRAGMA {pragma}")
                await self._conn.execute("BEGIN IMMEDIATE")
                await self._migrate_sqlite(self._conn)
                for statement in self._schema_for("sqlite"):
                    try:
                        await self._conn.execute(statement)
                    except sqlite3.OperationalError as exc:
                        # SQLite's ADD COLUMN has no IF NOT EXISTS: a column already there is migrated
                        if not (" ADD COLUMN " in statement and "duplicate column" in str(exc)):
                            raise
                await self._conn.commit()
                return
            except (OSError, sqlite3.Error) as exc:
                await self.close()
                locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                if not locked or time.monotonic() > deadline:
                    raise StorageError(f"cannot open the {self.where}: {exc}") from exc
                await asyncio.sleep(0.05)

    async def _migrate_sqlite(self, conn: Any) -> None:
        """Change an existing table that its schema statements (``IF NOT EXISTS``) cannot, before they
        run, in their transaction (BEGIN IMMEDIATE: one process at a time). None by default."""

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise StorageError(f"the {self.where} is not open")
        return self._conn

    async def _execute(self, sql: str, params: list[Any]) -> int:
        async with self._write_lock:
            try:
                if self.immediate_writes:
                    await self.conn.execute("BEGIN IMMEDIATE")
                async with self.conn.execute(sql, params) as cursor:
                    changed = cursor.rowcount
                await self.conn.commit()
                return changed
            except sqlite3.Error as exc:
                await self._rollback()
                raise StorageError(f"{self.where}: {exc}") from exc
            except asyncio.CancelledError:
                # Cancelled between two calls of the write: its transaction (and the file's write lock)
                # would stay open, and every other connection's write would fail after the busy timeout.
                await asyncio.shield(self._rollback())
                raise

    async def _rollback(self) -> None:
        try:
            await self.conn.rollback()
        except sqlite3.Error:
            pass

    async def _execute_batches(self, batches: list[tuple[str, list[Any]]]) -> None:
        async with self._write_lock:
            try:
                if self.immediate_writes:
                    await self.conn.execute("BEGIN IMMEDIATE")
                for sql, rows in batches:
                    await self.conn.executemany(sql, rows)
                await self.conn.commit()
            except sqlite3.Error as exc:
                await self._rollback()
                raise StorageError(f"{self.where}: {exc}") from exc
            except asyncio.CancelledError:  # as in _execute: never leave the transaction open
                await asyncio.shield(self._rollback())
                raise

    async def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        # Under the write lock: on the one connection a read between a write's statement and its
        # commit would see the uncommitted row (a job's progress that a kill -9 then takes back).
        async with self._write_lock:
            try:
                # One call on the connection's thread: a SELECT left open between two calls holds a read
                # snapshot that makes a write of another coroutine on this connection fail at once.
                return [tuple(r) for r in await self.conn.execute_fetchall(sql, params)]
            except sqlite3.Error as exc:
                raise StorageError(f"{self.where}: {exc}") from exc


class PostgresTable(SqlTable):
    def __init__(self, config: PostgresSqlStoreConfig) -> None:
        super().__init__(config.table_name)
        self.config = config
        self._pool: Any = None

    @property
    def where(self) -> str:
        c = self.config
        return f"postgres {self.what} {c.user}@{c.host}:{c.port}/{c.db} table {self.table}"

    def _p(self, i: int) -> str:
        return f"${i}"

    async def initialize(self) -> None:
        self._pool = await open_postgres_pool(self.config, self.where)
        try:
            async with self._pool.acquire() as conn:
                await create_postgres_schema(conn, self.table, self._schema_for("postgres"))
        except postgres_errors() as exc:
            raise StorageError(f"cannot open the {self.where}: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise StorageError(f"the {self.where} is not open")
        return self._pool

    async def _execute(self, sql: str, params: list[Any]) -> int:
        try:
            status = await self.pool.execute(sql, *params)  # e.g. "DELETE 1", "INSERT 0 1"
        except postgres_errors() as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def _execute_batches(self, batches: list[tuple[str, list[Any]]]) -> None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                for sql, rows in batches:
                    await conn.executemany(sql, rows)
        except postgres_errors() as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    async def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in await self.pool.fetch(sql, *params)]
        except postgres_errors() as exc:
            raise StorageError(f"{self.where}: {exc}") from exc


T = TypeVar("T", bound=SqlTable)


async def open_table(
    sqlite_class: type[T], postgres_class: type[T], config: SqliteSqlStoreConfig | PostgresSqlStoreConfig
) -> T:
    """Create and initialise the store ``config.type`` names (table and indexes created if missing)."""
    store = sqlite_class(config) if isinstance(config, SqliteSqlStoreConfig) else postgres_class(config)
    await store.initialize()
    return store
