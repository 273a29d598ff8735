"""Stored chat completions: a SQL table of OpenAI chat completions, written off the request path.

The run config's ``inference_store`` section picks the database, with the fields of Llama Stack's
SQL store configs (``type: sqlite`` with ``db_path``; ``type: postgres`` with host, port, db, user,
password). Without the section, completions go to SQLite at ``<state dir>/inference_store.db``,
as Llama Stack's own templates configure it.

One table (``chat_completions`` unless ``table_name`` says otherwise), no ORM::

    id TEXT PRIMARY KEY, created INTEGER, model TEXT, completion TEXT (JSON), input_messages TEXT (JSON),
    owner TEXT (JSON: the creator's principal and attributes when server.auth is on; else NULL)
    index (created, id)          -- listing all completions in either order
    index (model, created, id)   -- listing one model's completions

Listing pages by keyset on (created, id): ``after`` names a completion id, whose ``created`` is
looked up, and the next page holds the rows strictly beyond (created, id) in the listing order. No
OFFSET, so a page costs the same however deep it is. The ``id`` breaks ties between completions of
the same second, so no row is skipped or repeated across pages.

A completion id seen twice (an upstream that reuses ids) replaces the earlier record.

The owner lives in the completion's own row, written in the same statement (access control reads it
through ``owner_of``): a stored completion costs no separate owner record, and none is ever stored
without its owner. Tables made before the column existed get it on opening (their rows: no owner).

``CompletionWriter`` moves every write off the request path; see its docstring.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, Field

from lamina.errors import BadRequestError
from lamina.storage.config import PostgresSqlStoreConfig, SqliteSqlStoreConfig, sql_store_config
from lamina.storage.sql_table import Backend, PostgresTable, SqliteTable, SqlTable, open_table

log = structlog.get_logger(__name__)

DEFAULT_DB_NAME = "inference_store.db"
DEFAULT_TABLE = "chat_completions"

Order = Literal["asc", "desc"]


# -- config ------------------------------------------------------------------------------------


class SqliteInferenceStoreConfig(SqliteSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the completions.")


class PostgresInferenceStoreConfig(PostgresSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the completions.")


InferenceStoreConfig = Annotated[
    SqliteInferenceStoreConfig | PostgresInferenceStoreConfig, Field(discriminator="type")
]


def inference_store_config(
    raw: dict[str, Any] | None, state_dir: Path
) -> SqliteInferenceStoreConfig | PostgresInferenceStoreConfig:
    """The store config for a run config's ``inference_store`` (None: SQLite in the state dir).

    Raises pydantic's ValidationError on a bad section; the caller names the run config file.
    """
    return sql_store_config(
        SqliteInferenceStoreConfig, PostgresInferenceStoreConfig, raw, state_dir / DEFAULT_DB_NAME
    )


# -- records -----------------------------------------------------------------------------------


@dataclass
class CompletionRecord:
    """One chat completion to store. ``completion`` and ``input_messages`` are serialised by the writer."""

    id: str
    created: int
    model: str
    completion: Any  # the OpenAI chat.completion object (dict or pydantic model)
    input_messages: list[Any]
    owner: dict[str, Any] | None = None  # the creator (lamina.access: principal and attributes)

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


def record_from_completion(
    completion: Any, model: str, input_messages: list[Any], owner: dict[str, Any] | None = None
) -> CompletionRecord | None:
    """The record of a chat completion; None when it has no id (nothing to key it by)."""
    doc = _as_dict(completion)
    completion_id = doc.get("id")
    if not isinstance(completion_id, str) or not completion_id:
        return None
    created = doc.get("created")
    created = created if isinstance(created, int) and created > 0 else int(time.time())
    return CompletionRecord(completion_id, created, model, completion, list(input_messages), owner)


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


class InferenceStore(SqlTable):
    """The chat completions table; ``insert`` takes a batch in one transaction."""

    what = "inference store"

    async def insert(self, records: list[CompletionRecord]) -> None:
        """Insert (or replace, by id) the records, all in one transaction."""
        p = [self._p(i) for i in range(1, 7)]
        await self._execute_many(
            f"INSERT INTO {self.table} (id, created, model, completion, input_messages, owner) "
            f"VALUES ({', '.join(p)}) ON CONFLICT (id) DO UPDATE SET "
            f"created = excluded.created, model = excluded.model, completion = excluded.completion, "
            f"input_messages = excluded.input_messages, owner = excluded.owner",
            [self._values(r) for r in records],
        )

    async def get(self, completion_id: str) -> dict[str, Any] | None:
        """The stored completion with its ``input_messages``, or None."""
        rows = await self._fetch(
            f"SELECT completion, input_messages FROM {self.table} WHERE id = {self._p(1)}", [completion_id]
        )
        return _row(*rows[0]) if rows else None

    async def owner_of(self, completion_id: str) -> dict[str, Any] | None:
        """The stored completion's owner (None: no such completion, or stored without one)."""
        rows = await self._fetch(f"SELECT owner FROM {self.table} WHERE id = {self._p(1)}", [completion_id])
        return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None

    async def list(
        self, *, after: str | None = None, limit: int = 20, order: Order = "desc", model: str | None = None
    ) -> Page:
        """Up to ``limit`` completions by (created, id) in ``order``, after the completion ``after``."""
        cursor = None
        if after is not None:
            found = await self._fetch(f"SELECT created FROM {self.table} WHERE id = {self._p(1)}", [after])
            if not found:
                raise _unknown_cursor(after)
            cursor = (found[0][0], after)
        conds: list[str] = []
        params: list[Any] = []
        if model is not None:
            params.append(model)
            conds.append(f"model = {self._p(len(params))}")
        if cursor is not None:
            params.extend(cursor)
            op = "<" if order == "desc" else ">"
            conds.append(f"(created, id) {op} ({self._p(len(params) - 1)}, {self._p(len(params))})")
        params.append(limit + 1)  # one more than asked tells whether there is a next page
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        direction = "DESC" if order == "desc" else "ASC"
        rows = await self._fetch(
            f"SELECT completion, input_messages FROM {self.table}{where} "
            f"ORDER BY created {direction}, id {direction} LIMIT {self._p(len(params))}",
            params,
        )
        return Page([_row(c, m) for c, m in rows[:limit]], has_more=len(rows) > limit)

    def _schema_for(self, backend: Backend) -> list[str]:
        # PostgreSQL: ``id`` in the "C" collation, so ties order as in SQLite (code point order).
        id_type, int_type = ("TEXT", "INTEGER") if backend == "sqlite" else ('TEXT COLLATE "C"', "BIGINT")
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (id {id_type} PRIMARY KEY, created {int_type} NOT NULL, "
            f"model TEXT NOT NULL, completion TEXT NOT NULL, input_messages TEXT NOT NULL, owner TEXT)",
            # tables made before the owner column (SQLite has no IF NOT EXISTS here: sql_table skips
            # an ALTER whose column exists)
            f"ALTER TABLE {t} ADD COLUMN {'IF NOT EXISTS ' if backend == 'postgres' else ''}owner TEXT",
            f"CREATE INDEX IF NOT EXISTS {t}_created_id ON {t} (created, id)",
            f"CREATE INDEX IF NOT EXISTS {t}_model_created_id ON {t} (model, created, id)",
        ]

    @staticmethod
    def _values(record: CompletionRecord) -> tuple[str, int, str, str, str, str | None]:
        return (
            record.id,
            record.created,
            record.model,
            _dumps(record.completion),
            _dumps(record.input_messages),
            _dumps(record.owner) if record.owner is not None else None,
        )


class SqliteInferenceStore(SqliteTable, InferenceStore):
    """One aiosqlite connection, WAL journal and a busy timeout (lamina.storage.sql_table)."""


class PostgresInferenceStore(PostgresTable, InferenceStore):
    """An asyncpg pool (lamina.storage.sql_table)."""


async def open_inference_store(
    config: SqliteInferenceStoreConfig | PostgresInferenceStoreConfig,
) -> InferenceStore:
    """Create and initialise the store ``config.type`` names (table and indexes created if missing)."""
    return await open_table(SqliteInferenceStore, PostgresInferenceStore, config)


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
