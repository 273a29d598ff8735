"""File metadata: a SQL table of uploaded files, on SQLite (aiosqlite) or PostgreSQL (asyncpg).

The config is Llama Stack's SQL store config (``type: sqlite`` with ``db_path``; ``type: postgres``
with host, port, db, user, password), as the inference store reads it, with ``table_name``
defaulting to ``openai_files`` (the table Llama Stack's localfs provider uses). One table, no ORM::

    id TEXT PRIMARY KEY, filename TEXT, purpose TEXT, bytes BIGINT, created_at BIGINT,
    expires_at BIGINT NULL, content_type TEXT, file_path TEXT
    index (created_at, id), index (purpose, created_at, id), index (expires_at)

Listing pages by keyset on (created_at, id), as the inference store does. Rows whose ``expires_at``
has passed are invisible to ``get`` and ``list``; ``expired`` names them for the provider to purge.
``usage`` counts the files and bytes stored (for quotas), from the table every replica shares.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from lamina.errors import BadRequestError
from lamina.storage.config import PostgresSqlStoreConfig, SqliteSqlStoreConfig, sql_store_config
from lamina.storage.sql_table import Backend, PostgresTable, SqliteTable, SqlTable, open_table

DEFAULT_TABLE = "openai_files"
DEFAULT_DB_NAME = "files_metadata.db"
Order = Literal["asc", "desc"]
_COLUMNS = ("id", "filename", "purpose", "bytes", "created_at", "expires_at", "content_type", "file_path")


class SqliteFilesStoreConfig(SqliteSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the file metadata.")


class PostgresFilesStoreConfig(PostgresSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the file metadata.")


FilesStoreConfig = Annotated[SqliteFilesStoreConfig | PostgresFilesStoreConfig, Field(discriminator="type")]


def files_store_config(raw: Any, default_db: Path) -> SqliteFilesStoreConfig | PostgresFilesStoreConfig:
    """Validate a ``metadata_store`` section (None: SQLite at ``default_db``)."""
    return sql_store_config(SqliteFilesStoreConfig, PostgresFilesStoreConfig, raw, default_db)


@dataclass
class FileRecord:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None
    content_type: str
    file_path: str


@dataclass
class FilePage:
    rows: list[FileRecord]
    has_more: bool


def _unknown_cursor(after: str) -> BadRequestError:
    return BadRequestError(
        f"after: no stored file has id {after!r}; pass the id of a listed file (the last_id of the "
        f"previous page)",
        param="after",
    )


class FilesStore(SqlTable):
    what = "files store"

    def _schema_for(self, backend: Backend) -> list[str]:
        # Postgres: ``id`` in the "C" collation, so ties order as in SQLite
        return self._schema("TEXT" if backend == "sqlite" else 'TEXT COLLATE "C"')

    def _schema(self, id_type: str) -> list[str]:
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (id {id_type} PRIMARY KEY, filename TEXT NOT NULL, "
            f"purpose TEXT NOT NULL, bytes BIGINT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT, "
            f"content_type TEXT NOT NULL, file_path TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {t}_created_id ON {t} (created_at, id)",
            f"CREATE INDEX IF NOT EXISTS {t}_purpose_created_id ON {t} (purpose, created_at, id)",
            f"CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_at)",
        ]

    async def insert(self, record: FileRecord) -> None:
        marks = ", ".join(self._p(i + 1) for i in range(len(_COLUMNS)))
        await self._execute(
            f"INSERT INTO {self.table} ({', '.join(_COLUMNS)}) VALUES ({marks})", list(astuple(record))
        )

    async def get(self, file_id: str, now: int) -> FileRecord | None:
        rows = await self._fetch(
            f"SELECT {', '.join(_COLUMNS)} FROM {self.table} WHERE id = {self._p(1)} "
            f"AND (expires_at IS NULL OR expires_at > {self._p(2)})",
            [file_id, now],
        )
        return FileRecord(*rows[0]) if rows else None

    async def delete(self, file_id: str) -> None:
        await self._execute(f"DELETE FROM {self.table} WHERE id = {self._p(1)}", [file_id])

    async def list(
        self,
        *,
        now: int,
        after: str | None = None,
        limit: int = 10000,
        order: Order = "desc",
        purpose: str | None = None,
    ) -> FilePage:
        params: list[Any] = [now]
        conds = [f"(expires_at IS NULL OR expires_at > {self._p(1)})"]
        if purpose is not None:
            params.append(purpose)
            conds.append(f"purpose = {self._p(len(params))}")
        if after is not None:
            found = await self._fetch(f"SELECT created_at FROM {self.table} WHERE id = {self._p(1)}", [after])
            if not found:
                raise _unknown_cursor(after)
            params += [found[0][0], after]
            op = "<" if order == "desc" else ">"
            conds.append(f"(created_at, id) {op} ({self._p(len(params) - 1)}, {self._p(len(params))})")
        params.append(limit + 1)  # one more than asked tells whether there is a next page
        direction = "DESC" if order == "desc" else "ASC"
        rows = await self._fetch(
            f"SELECT {', '.join(_COLUMNS)} FROM {self.table} WHERE {' AND '.join(conds)} "
            f"ORDER BY created_at {direction}, id {direction} LIMIT {self._p(len(params))}",
            params,
        )
        return FilePage([FileRecord(*r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def usage(self, now: int) -> tuple[int, int]:
        """(files, bytes) stored and not expired: what a deployment's quota counts."""
        rows = await self._fetch(
            f"SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM {self.table} "
            f"WHERE expires_at IS NULL OR expires_at > {self._p(1)}",
            [now],
        )
        return int(rows[0][0]), int(rows[0][1])

    async def expired(self, now: int, limit: int = 1000) -> list[FileRecord]:
        rows = await self._fetch(
            f"SELECT {', '.join(_COLUMNS)} FROM {self.table} WHERE expires_at <= {self._p(1)} "
            f"ORDER BY expires_at LIMIT {self._p(2)}",
            [now, limit],
        )
        return [FileRecord(*r) for r in rows]

    async def ids(self) -> set[str]:
        """Every stored id (expired ones too): the start-up cleanup keeps these files."""
        return {r[0] for r in await self._fetch(f"SELECT id FROM {self.table}", [])}


class SqliteFilesStore(SqliteTable, FilesStore):
    synchronous = None


class PostgresFilesStore(PostgresTable, FilesStore):
    pass


async def open_files_store(config: SqliteFilesStoreConfig | PostgresFilesStoreConfig) -> FilesStore:
    """Create and initialise the store ``config.type`` names (table and indexes created if missing)."""
    return await open_table(SqliteFilesStore, PostgresFilesStore, config)
