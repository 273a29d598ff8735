"""Opening the stores' database connections: one SQLite connection, or one asyncpg pool.

Shared by the key-value store, the inference store and the files store. The drivers are imported
when first used, so a process that never opens a store of that kind does not need them.
"""

from __future__ import annotations

import ssl
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lamina.storage.kvstore import StorageError

if TYPE_CHECKING:
    import aiosqlite

BUSY_TIMEOUT_MS = 5000


async def open_sqlite(
    path: Path, *, synchronous: str | None = "NORMAL", autocommit: bool = False
) -> aiosqlite.Connection:
    """Connect to ``path`` (parent directories created) with a WAL journal and a busy timeout.

    ``synchronous`` sets ``PRAGMA synchronous`` (None: leave SQLite's default). ``autocommit``: every
    statement is its own transaction (no ``commit()``, one hand-off to aiosqlite's thread less per
    write), for a caller whose every write is one statement. Raises OSError or sqlite3.Error; the
    caller turns them into its own StorageError.
    """
    import aiosqlite

    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"isolation_level": None} if autocommit else {}
    conn = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, **extra)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if synchronous is not None:
            await conn.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        await conn.close()
        raise
    return conn


class PostgresConnectionConfig(Protocol):
    """The connection fields every Postgres store config has."""

    host: str
    port: int
    db: str
    user: str
    password: str | None
    ssl_mode: str | None
    ca_cert_path: str | None
    pool_min_size: int
    pool_max_size: int


def postgres_errors() -> tuple[type[BaseException], ...]:
    """The asyncpg failures a store reports as StorageError (TimeoutError is an OSError)."""
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def open_postgres_pool(config: PostgresConnectionConfig, where: str) -> Any:
    """An asyncpg pool for ``config``; StorageError "cannot open the {where}: ..." if that fails."""
    import asyncpg

    try:
        tls: ssl.SSLContext | str | None = config.ssl_mode
        if config.ca_cert_path:
            tls = ssl.create_default_context(cafile=config.ca_cert_path)
        return await asyncpg.create_pool(
            host=config.host,
            port=config.port,
            database=config.db,
            user=config.user,
            password=config.password,
            ssl=tls,
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            command_timeout=30,
        )
    except postgres_errors() as exc:
        raise StorageError(f"cannot open the {where}: {exc}") from exc


async def create_postgres_schema(conn: Any, table: str, statements: Iterable[str]) -> None:
    """Run a table's ``CREATE ... IF NOT EXISTS`` statements so that replicas starting at once all succeed.

    Those statements are not safe against themselves: two sessions creating one new table at the same
    moment, one fails on pg_type's unique index. A transaction-scoped advisory lock on the table's name
    makes them take turns (released at commit).
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(table.encode()))
        for statement in statements:
            await conn.execute(statement)
