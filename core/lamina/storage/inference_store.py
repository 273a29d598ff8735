"""Stored chat completions: a SQL table of OpenAI chat completions, written off the request path.

The run config's ``inference_store`` section picks the database, with the fields of Llama Stack's
SQL store configs (``type: sqlite`` with ``db_path``; ``type: postgres`` with host, port, db, user,
password). Without the section, completions go to SQLite at ``<state dir>/inference_store.db``,
as Llama Stack's own templates configure it.

One table (``chat_completions`` unless ``table_name`` says otherwise), no ORM::

    id TEXT PRIMARY KEY, created INTEGER, model TEXT, completion TEXT (JSON), input_messages TEXT (JSON)
    index (created, id)          -- listing all completions in either order
    index (model, created, id)   -- listing one model's completions

Listing pages by keyset on (created, id): ``after`` names a completion id, whose ``created`` is
looked up, and the next page holds the rows strictly beyond (created, id) in the listing order. No
OFFSET, so a page costs the same however deep it is. The ``id`` breaks ties between completions of
the same second, so no row is skipped or repeated across pages.

A completion id seen twice (an upstream that reuses ids) replaces the earlier record.

``CompletionWriter`` moves every write off the request path; see its docstring.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from lamina.errors import BadRequestError
from lamina.storage.connections import BUSY_TIMEOUT_MS as BUSY_TIMEOUT_MS  # re-exported
from lamina.storage.connections import (
    create_postgres_schema,
    open_postgres_pool,
    open_sqlite,
    postgres_errors,
)
from lamina.storage.kvstore import StorageError

log = structlog.get_logger(__name__)

DEFAULT_DB_NAME = "inference_store.db"
DEFAULT_TABLE = "chat_completions"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")  # room for index-name suffixes within 63

Order = Literal["asc", "desc"]


# -- config ------------------------------------------------------------------------------------


class _SqlStoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the completions.")

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a plain SQL identifier (letters, digits, underscores; at most 48)")
        return value


class SqliteSqlStoreConfig(_SqlStoreConfig):
    type: Literal["sqlite"] = "sqlite"
    db_path: str | None = Field(
        default=None, description=f"SQLite file (created if missing); default <state dir>/{DEFAULT_DB_NAME}."
    )


class PostgresSqlStoreConfig(_SqlStoreConfig):
    type: Literal["postgres"] = "postgres"
    host: str = "localhost"
    port: int = Field(default=5432, ge=1, le=65535)
    db: str = "llamastack"
    user: str
    password: str | None = None
    ssl_mode: str | None = Field(default=None, description="libpq sslmode: disable, require, ...")
    ca_cert_path: str | None = None
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=5, ge=1)


SqlStoreConfig = Annotated[SqliteSqlStoreConfig | PostgresSqlStoreConfig, Field(discriminator="type")]


_CONFIG_CLASSES: dict[str, type[_SqlStoreConfig]] = {
    "sqlite": SqliteSqlStoreConfig,
    "postgres": PostgresSqlStoreConfig,
}


def inference_store_config(raw: dict[str, Any] | None, state_dir: Path) -> SqlStoreConfig:
    """The store config for a run config's ``inference_store`` (None: SQLite in the state dir).

    Raises pydantic's ValidationError on a bad section; the caller names the run config file.
    """
    raw = raw or {"type": "sqlite"}
    kind = raw.get("type") if isinstance(raw, dict) else None
    config_class = _CONFIG_CLASSES.get(kind) if isinstance(kind, str) else None
    if config_class is None:  # an unknown type: the union's message lists the known ones
        config = TypeAdapter(SqlStoreConfig).validate_python(raw)
    else:  # validated by its class directly, so error locations carry no union tag
        config = config_class.model_validate(raw)
    if isinstance(config, SqliteSqlStoreConfig) and not config.db_path:
        config = config.model_copy(update={"db_path": str(state_dir / DEFAULT_DB_NAME)})
    return config


# -- records -----------------------------------------------------------------------------------


@dataclass
class CompletionRecord:
    """One chat completion to store. ``completion`` and ``input_messages`` are serialised by the writer."""

    id: str
    created: int
    model: str
    completion: Any  # the OpenAI chat.completion object (dict or pydantic model)
    input_messages: list[Any]

    def stored(self) -> dict[str, Any]:
        """The completion as the list and get routes return it."""
        doc = json.loads(_dumps(self.completion))
        doc["input_messages"] = json.loads(_dumps(self.input_messages))
        return doc


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", exclude_unset=True)
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_default, separators=(",", ":"), ensure_ascii=False)


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    return obj if isinstance(obj, dict) else {}


def record_from_completion(completion: Any, model: str, input_messages: list[Any]) -> CompletionRecord | None:
    """The record of a non-streamed chat completion; None when it has no id (nothing to key it by)."""
    doc = _as_dict(completion)
    completion_id = doc.get("id")
    if not isinstance(completion_id, str) or not completion_id:
        return None
    created = doc.get("created")
    created = created if isinstance(created, int) and created > 0 else int(time.time())
    return CompletionRecord(completion_id, created, model, completion, list(input_messages))


# -- the stores --------------------------------------------------------------------------------


@dataclass
class Page:
    rows: list[dict[str, Any]]
    has_more: bool = False


def _row(completion: str, input_messages: str) -> dict[str, Any]:
    doc = json.loads(completion)
    doc["input_messages"] = json.loads(input_messages)
    return doc


def _unknown_cursor(after: str) -> BadRequestError:
    return BadRequestError(
        f"after: no stored chat completion has id {after!r}; pass the id of a listed completion "
        f"(the last_id of the previous page)",
        param="after",
    )


class InferenceStore(ABC):
    """The chat completions table; ``insert`` takes a batch in one transaction."""

    def __init__(self, table: str) -> None:
        self.table = table

    @property
    @abstractmethod
    def where(self) -> str:
        """The store, for messages."""

    @abstractmethod
    async def initialize(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def insert(self, records: list[CompletionRecord]) -> None:
        """Insert (or replace, by id) the records, all in one transaction."""

    @abstractmethod
    async def get(self, completion_id: str) -> dict[str, Any] | None:
        """The stored completion with its ``input_messages``, or None."""

    @abstractmethod
    async def list(
        self, *, after: str | None = None, limit: int = 20, order: Order = "desc", model: str | None = None
    ) -> Page:
        """Up to ``limit`` completions by (created, id) in ``order``, after the completion ``after``."""

    def _schema(self, id_type: str, int_type: str) -> list[str]:
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (id {id_type} PRIMARY KEY, created {int_type} NOT NULL, "
            f"model TEXT NOT NULL, completion TEXT NOT NULL, input_messages TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {t}_created_id ON {t} (created, id)",
            f"CREATE INDEX IF NOT EXISTS {t}_model_created_id ON {t} (model, created, id)",
        ]

    def _upsert_sql(self, p: list[str]) -> str:
        return (
            f"INSERT INTO {self.table} (id, created, model, completion, input_messages) "
            f"VALUES ({p[0]}, {p[1]}, {p[2]}, {p[3]}, {p[4]}) ON CONFLICT (id) DO UPDATE SET "
            f"created = excluded.created, model = excluded.model, completion = excluded.completion, "
            f"input_messages = excluded.input_messages"
        )

    def _list_sql(
        self, placeholder: Any, *, cursor: tuple[int, str] | None, limit: int, order: Order, model: str | None
    ) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if model is not None:
            params.append(model)
            conds.append(f"model = {placeholder(len(params))}")
        if cursor is not None:
            params.extend(cursor)
            op = "<" if order == "desc" else ">"
            conds.append(f"(created, id) {op} ({placeholder(len(params) - 1)}, {placeholder(len(params))})")
        params.append(limit + 1)  # one more than asked tells whether there is a next page
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        direction = "DESC" if order == "desc" else "ASC"
        sql = (
            f"SELECT completion, input_messages FROM {self.table}{where} "
            f"ORDER BY created {direction}, id {direction} LIMIT {placeholder(len(params))}"
        )
        return sql, params

    @staticmethod
    def _page(rows: list[tuple[str, str]], limit: int) -> Page:
        return Page([_row(c, m) for c, m in rows[:limit]], has_more=len(rows) > limit)

    @staticmethod
    def _values(record: CompletionRecord) -> tuple[str, int, str, str, str]:
        return (
            record.id,
            record.created,
            record.model,
            _dumps(record.completion),
            _dumps(record.input_messages),
        )


class SqliteInferenceStore(InferenceStore):
    """aiosqlite, one connection, WAL journal and a busy timeout (as the SQLite KV store)."""

    def __init__(self, config: SqliteSqlStoreConfig) -> None:
        super().__init__(config.table_name)
        if not config.db_path:
            raise ValueError("SqliteSqlStoreConfig.db_path is unset; use inference_store_config()")
        self.path = Path(config.db_path).expanduser()
        self._conn: Any = None

    @property
    def where(self) -> str:
        return f"sqlite inference store {self.path}"

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise StorageError(f"the {self.where} is not open")
        return self._conn

    async def initialize(self) -> None:
        try:
            self._conn = await open_sqlite(self.path)
            for statement in self._schema("TEXT", "INTEGER"):
                await self._conn.execute(statement)
            await self._conn.commit()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the {self.where}: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def insert(self, records: list[CompletionRecord]) -> None:
        values = [self._values(r) for r in records]
        try:
            await self.conn.executemany(self._upsert_sql(["?"] * 5), values)
            await self.conn.commit()
        except sqlite3.Error as exc:
            await self._rollback()
            raise StorageError(f"{self.where}: {exc}") from exc

    async def _rollback(self) -> None:
        try:
            await self.conn.rollback()
        except sqlite3.Error:
            pass

    async def get(self, completion_id: str) -> dict[str, Any] | None:
        try:
            async with self.conn.execute(
                f"SELECT completion, input_messages FROM {self.table} WHERE id = ?", (completion_id,)
            ) as cur:
                row = await cur.fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        return _row(*row) if row else None

    async def list(
        self, *, after: str | None = None, limit: int = 20, order: Order = "desc", model: str | None = None
    ) -> Page:
        try:
            cursor = None
            if after is not None:
                async with self.conn.execute(
                    f"SELECT created FROM {self.table} WHERE id = ?", (after,)
                ) as cur:
                    found = await cur.fetchone()
                if found is None:
                    raise _unknown_cursor(after)
                cursor = (found[0], after)
            sql, params = self._list_sql(lambda _i: "?", cursor=cursor, limit=limit, order=order, model=model)
            async with self.conn.execute(sql, params) as cur:
                rows = await cur.fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        return self._page(rows, limit)


class PostgresInferenceStore(InferenceStore):
    """asyncpg pool. ``id`` uses the "C" collation so ties order as in SQLite (code point order)."""

    def __init__(self, config: PostgresSqlStoreConfig) -> None:
        super().__init__(config.table_name)
        self.config = config
        self._pool: Any = None

    @property
    def where(self) -> str:
        c = self.config
        return f"postgres inference store {c.user}@{c.host}:{c.port}/{c.db} table {self.table}"

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise StorageError(f"the {self.where} is not open")
        return self._pool

    async def initialize(self) -> None:
        self._pool = await open_postgres_pool(self.config, self.where)
        try:
            async with self._pool.acquire() as conn:
                await create_postgres_schema(conn, self.table, self._schema('TEXT COLLATE "C"', "BIGINT"))
        except postgres_errors() as exc:
            raise StorageError(f"cannot open the {self.where}: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def insert(self, records: list[CompletionRecord]) -> None:
        values = [self._values(r) for r in records]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.executemany(self._upsert_sql([f"${i}" for i in range(1, 6)]), values)
        except postgres_errors() as exc:
            raise StorageError(f"{self.where}: {exc}") from exc

    async def get(self, completion_id: str) -> dict[str, Any] | None:
        try:
            row = await self.pool.fetchrow(
                f"SELECT completion, input_messages FROM {self.table} WHERE id = $1", completion_id
            )
        except postgres_errors() as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        return _row(row[0], row[1]) if row else None

    async def list(
        self, *, after: str | None = None, limit: int = 20, order: Order = "desc", model: str | None = None
    ) -> Page:
        try:
            cursor = None
            if after is not None:
                created = await self.pool.fetchval(f"SELECT created FROM {self.table} WHERE id = $1", after)
                if created is None:
                    raise _unknown_cursor(after)
                cursor = (created, after)
            sql, params = self._list_sql(
                lambda i: f"${i}", cursor=cursor, limit=limit, order=order, model=model
            )
            rows = await self.pool.fetch(sql, *params)
        except postgres_errors() as exc:
            raise StorageError(f"{self.where}: {exc}") from exc
        return self._page([(r[0], r[1]) for r in rows], limit)


async def open_inference_store(config: SqlStoreConfig) -> InferenceStore:
    """Create and initialise the store ``config.type`` names (tables and indexes created if missing)."""
    if isinstance(config, SqliteSqlStoreConfig):
        store: InferenceStore = SqliteInferenceStore(config)
    elif isinstance(config, PostgresSqlStoreConfig):
        store = PostgresInferenceStore(config)
    else:  # pragma: no cover - the discriminated union admits nothing else
        raise TypeError(f"unknown inference store config {type(config).__name__}")
    await store.initialize()
    return store


# -- the background writer ---------------------------------------------------------------------

_STOP = object()


@dataclass
class WriterStats:
    written: int = 0
    dropped: int = 0  # the queue was full (or the writer closed): never stored
    failed: int = 0  # the store rejected them: never stored


@dataclass
class CompletionWriter:
    """Stores completion records in the background: a request never waits for the database.

    ``submit`` is synchronous and O(1): it puts the record on a bounded ``asyncio.Queue`` with
    ``put_nowait`` and returns. One task takes records off the queue and inserts them in batches
    (whatever is queued, up to ``batch_size``, in one transaction), so a burst of completions costs a
    few transactions, not one each.

    **Records are dropped, not waited for.** When the queue is full (``queue_size`` records
    waiting: the store is slower than the traffic, or down) the record is dropped: a structlog
    warning ``inference_store_record_dropped`` is logged and ``stats.dropped`` counts it. A batch
    the store rejects is retried once record by record, then dropped with a warning
    (``inference_store_write_failed``, counted in ``stats.failed``). Either way the completion
    itself has already been answered. Records submitted after ``close`` are dropped too.

    ``close`` flushes: it waits (up to ``flush_timeout`` seconds) until everything queued is
    written, then stops the task. Records not written by the timeout are lost, and counted.

    Until its batch is written, a record is visible through ``pending`` (by id), so a completion
    can be fetched by id right after it was answered; listings show it once written.
    """

    store: InferenceStore
    queue_size: int = 1024
    batch_size: int = 64
    flush_timeout: float = 10.0
    stats: WriterStats = field(default_factory=WriterStats)
    pending: dict[str, CompletionRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> CompletionWriter:
        self._task = asyncio.create_task(self._run(), name="inference-store-writer")
        return self

    def submit(self, record: CompletionRecord) -> bool:
        """Queue the record for writing; False (and a warning) when it was dropped."""
        if self._closed:
            return self._drop(record, "the inference store is closed (server shutting down)")
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            return self._drop(record, f"the write queue is full ({self.queue_size} records waiting)")
        self.pending[record.id] = record
        return True

    def _drop(self, record: CompletionRecord, reason: str) -> bool:
        self.stats.dropped += 1
        log.warning(
            "inference_store_record_dropped",
            completion_id=record.id,
            reason=reason,
            dropped_total=self.stats.dropped,
            store=self.store.where,
        )
        return False

    async def _run(self) -> None:
        stop = False
        while not stop:
            item = await self._queue.get()
            batch: list[CompletionRecord] = []
            while True:
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                if len(batch) >= self.batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[CompletionRecord]) -> None:
        try:
            await self.store.insert(batch)
            self.stats.written += len(batch)
        except Exception as exc:
            log.warning(
                "inference_store_batch_failed", records=len(batch), error=str(exc), retry="one by one"
            )
            for record in batch:
                try:
                    await self.store.insert([record])
                    self.stats.written += 1
                except Exception as exc2:
                    self.stats.failed += 1
                    log.warning(
                        "inference_store_write_failed",
                        completion_id=record.id,
                        error=str(exc2),
                        failed_total=self.stats.failed,
                    )
        finally:
            for record in batch:
                if self.pending.get(record.id) is record:
                    del self.pending[record.id]

    async def close(self) -> None:
        """Write everything queued (up to ``flush_timeout`` s), then stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is None or task.done():
            return
        try:
            async with asyncio.timeout(self.flush_timeout):
                await self._queue.put(_STOP)
                await asyncio.shield(task)
        except TimeoutError:
            lost = len(self.pending)
            self.stats.dropped += lost
            log.warning(
                "inference_store_flush_timed_out",
                timeout=self.flush_timeout,
                records_lost=lost,
                store=self.store.where,
            )
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
